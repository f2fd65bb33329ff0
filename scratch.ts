import { writeFileSync } from 'node:fs';
import { linePlotSvg, scatterPlotSvg } from './src/util/svgPlot.js';
writeFileSync('/tmp/scratch/a.svg', await linePlotSvg({ title: 'sentiment vs steer value', xLabel: 'steer value', yLabel: 'rate (%)', series: [
  { name: 'positive %', points: [[-8, 25], [0, 49], [8, 63]], yErrors: [[20, 30], [44, 54], [58, 68]] },
  { name: 'unsteered', points: [[-8, 50], [8, 50]], dashed: true } ] }));
writeFileSync('/tmp/scratch/b.svg', await scatterPlotSvg({ title: 'one point', xLabel: 'ppl', yLabel: 'rate', series: [
  { name: 'settings', points: [[5.8, 49.3]], labels: ['0'], xErrors: [[5.5, 6.1]], yErrors: [[44, 54]] } ] }));
