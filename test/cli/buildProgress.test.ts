/** The CLI's report of a cold graph build (src/cli/common.ts buildProgressReporter), on a terminal and off one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgressReporter } from '../../src/cli/common.js';

/** A write stream that keeps what it is given; `isTTY` as asked, 100 columns (cli-progress reads them). */
function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = {
    isTTY,
    columns: 100,
    write: (s: string) => ((out += s), true),
    on: () => stream,
    removeListener: () => stream,
  };
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => out };
}

const GiB = 2 ** 30;

test('off a terminal: one line when a build starts (size, cache folder), one when it ends, nothing between', () => {
  const { stream, text } = fakeStream(false);
  const report = buildProgressReporter(stream);
  report(0, 3 * GiB, '/cache/graphs/abc');
  report(GiB, 3 * GiB, '/cache/graphs/abc');
  report(2 * GiB, 3 * GiB, '/cache/graphs/abc');
  assert.equal(
    text(),
    'lmsteer: building the graph (3.0 GiB of weights; first load of this model in this precision, kept in /cache/graphs/abc) …\n',
  );
  report(3 * GiB, 3 * GiB, '/cache/graphs/abc');
  assert.match(text(), /\nlmsteer: graph built in \d+\.\d s; opening it …\n$/);
  // A second build (another model in the same process) is reported afresh.
  report(0, 1024, undefined);
  assert.match(text(), /building the graph \(1\.0 KiB of weights; first load of this model in this precision\) …\n$/);
});

test('on a terminal: a bar of the bytes made, stopped and followed by the end line', () => {
  const { stream, text } = fakeStream(true);
  const report = buildProgressReporter(stream);
  report(0, 4 * GiB, '/c');
  report(GiB, 4 * GiB, '/c');
  report(4 * GiB, 4 * GiB, '/c');
  const out = text();
  assert.match(out, /^lmsteer: building the graph \(4\.0 GiB of weights; .*kept in \/c\)\n/);
  assert.match(out, /lmsteer: building \[[^\]]*\] 0% \| 0\.00 of 4\.00 GiB/);
  assert.match(out, /lmsteer: building \[[^\]]*\] 100% \| 4\.00 of 4\.00 GiB/);
  assert.match(out, /lmsteer: graph built in \d+\.\d s; opening it …\n$/);
});
