import { readFileSync } from 'node:fs';
import { loadModel } from './src/runtime/loadModel.js';
import { MaskedForward } from './src/train/maskedForward.js';
import { maskedLlamaHidden } from './test/helpers/maskedReference.js';
const model = await loadModel('../shared/models/stories260K/hf', { threads: 2 });
const lines = readFileSync('../shared/data/sentiment/sst2_glue/train.tsv','utf8').split('\n').slice(1,129).map(l=>l.split('\t')[1]);
const E = model.outputEmbeddings(); const d = model.cfg.hiddenSize; const V = E.shape[0];
const eos = model.tokenizer.eosIds[0]; console.log('eos', eos, 'pad', model.tokenizer.padId);
const mf = await MaskedForward.open(model);
const ce = (h: ArrayLike<number>, off: number, tgt: number) => { const z=new Float64Array(V); let m=-Infinity; for(let v=0;v<V;v++){let s=0; for(let j=0;j<d;j++) s+=h[off+j]*E.data[v*d+j]; z[v]=s; m=Math.max(m,s);} let S=0; for(let v=0;v<V;v++) S+=Math.exp(z[v]-m); return m+Math.log(S)-z[tgt]; };
const acc: Record<string,{sum:number,n:number,dh:number}> = {};
const add=(k:string,c:number,dh:number)=>{acc[k]??={sum:0,n:0,dh:0}; acc[k].sum+=c; acc[k].n++; acc[k].dh+=dh;};
let realSum=0, realN=0;
for (let s=0;s<lines.length;s+=32) {
  const texts = lines.slice(s,s+32);
  const ids = texts.map(t=>model.tokenizer.encode(t).slice(0,256));
  const T = Math.max(...ids.map(r=>r.length));
  const rows = ids.map(r=>[...r, ...Array(T-r.length).fill(eos)]);
  const h = await mf.hidden(rows, ids.map(r=>r.length));
  const un = await model.decoder.forward(rows, {hiddenOnly: true});
  rows.forEach((row,b)=>{
    const n = ids[b].length;
    for (let t=0;t<T-1;t++){
      const tgt=row[t+1];
      const c = ce(h.data,(b*T+t)*d,tgt);
      if (t+1<n){ realSum+=c; realN++; continue; }
      const exact = h.data.subarray((b*T+t)*d,(b*T+t+1)*d);
      const dist=(x:ArrayLike<number>,o:number)=>{let q=0; for(let j=0;j<d;j++) q+=(x[o+j]-exact[j])**2; return Math.sqrt(q);};
      add('exact', c, 0);
      const lo=(b*T+Math.min(t,n-1))*d; add('last-real', ce(h.data, lo, tgt), dist(h.data, lo));
      const uo=(b*T+t)*d; add('unmasked (pads see pads)', ce(un.hidden.data, uo, tgt), dist(un.hidden.data, uo));
    }
  });
  // own-key variant: float64 with keys s<n plus self, only first 8 rows per batch (slow)
}
console.log('real-target CE', (realSum/realN).toFixed(4), realN);
for (const [k,v] of Object.entries(acc)) console.log(k, 'pad-target CE', (v.sum/v.n).toFixed(4), 'mean |dh|', (v.dh/v.n).toFixed(3), v.n);
let hn=0; // norm of exact pad states
await mf.close(); model.close();
