import { readFileSync } from 'node:fs';
import { loadModel } from './src/runtime/loadModel.js';
import { loadSteer } from './src/steer/steerFile.js';
import { packScale, packSteers } from './src/steer/pack.js';
const model = await loadModel('../shared/models/stories260K/hf', { threads: 1 });
const texts = readFileSync('../shared/data/prompts/sentiment_prompts-10k/neutral_prompts.dev.jsonl','utf8').trim().split('\n').slice(0,60).map(l=>JSON.parse(l).prompt.text);
const V = model.cfg.vocabSize;
for (const dir of [null, '/tmp/exp/excl', '/tmp/exp/incl', '/tmp/exp/excl-nodummy']) {
  let byteMass=0, eos=0, n=0, maxByte=0;
  for (const t of texts) {
    const ids = model.tokenizer.encode(t);
    let steer;
    if (dir) { const s = loadSteer(dir); const p = packSteers([s]); const vals=[s.config.slots.map(x=>x.defaultValue)]; steer={p1:p.p1,p2t:p.p2t,scale:packScale(p,[vals])}; }
    const r = await model.decoder.forward([ids], { steer });
    const L = r.logits.data as Float32Array; const T = ids.length;
    for (let k=0;k<T;k++){ const row=L.subarray(k*V,(k+1)*V); let m=-Infinity; for(const x of row) m=Math.max(m,x); let z=0; for(const x of row) z+=Math.exp(x-m); let b=0; for(let v=3;v<259;v++) b+=Math.exp(row[v]-m)/z; byteMass+=b; maxByte=Math.max(maxByte,b); eos+=Math.exp(row[2]-m)/z; n++; }
  }
  console.log(dir ?? 'unsteered', 'mean P(byte tokens)', (byteMass/n).toExponential(3), 'max', maxByte.toExponential(2), 'mean P(EOS)', (eos/n).toExponential(3));
}
model.close();
