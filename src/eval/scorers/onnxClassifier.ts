/**
 * onnx-classifier: any Hugging Face sequence-classification model exported to ONNX (optimum's
 * `--task text-classification` layout: a folder with model.onnx, tokenizer.json and config.json with id2label),
 * run with onnxruntime-node. Texts are tokenized with the model's tokenizer (its special tokens, truncated to the
 * model's positions), padded per batch; input_ids + attention_mask (+ token_type_ids of zeros when the graph
 * takes them) go in, the first output's logits [B, labels] come out. Scores are softmax probabilities (sigmoid
 * for config.problem_type = multi_label_classification) of one label: the one asked for, or the one whose
 * id2label name says positive sentiment or toxicity.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import '../../util/ortTelemetryOff.js';
import ort from 'onnxruntime-node';
import { HfTokenizer } from '../../tokenizer/hfTokenizer.js';
import { LmSteerError } from '../../util/errors.js';
import type { Scorer } from './scorer.js';

export interface OnnxClassifierOptions {
  /** The label to score: its name in id2label (case-insensitive) or its index. Default: detected. */
  label?: string;
  /** Texts per ORT call. Default 32. */
  batchSize?: number;
  threads?: number;
}

/** id2label names that mean "the attribute" for an unnamed label, and the attribute each stands for. */
const KNOWN_LABELS: [RegExp, string][] = [
  [/^(positive|pos|label_pos)$/i, 'positive-sentiment'],
  [/^(toxic|toxicity|offensive|hate|hateful|abusive|insult)$/i, 'toxicity'],
];

function attributeOf(name: string): string {
  return KNOWN_LABELS.find(([re]) => re.test(name))?.[1] ?? name.toLowerCase();
}

interface Config {
  id2label?: Record<string, string>;
  problem_type?: string;
  max_position_embeddings?: number;
  pad_token_id?: number;
}

export class OnnxClassifierScorer implements Scorer {
  readonly name = 'onnx-classifier';
  readonly attribute: string;
  readonly version: string;
  readonly labelIndex: number;
  readonly labels: string[];

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: HfTokenizer,
    private readonly cfg: Config,
    labelIndex: number,
    labels: string[],
    modelHash: string,
    private readonly maxLength: number,
    private readonly batchSize: number,
  ) {
    this.labelIndex = labelIndex;
    this.labels = labels;
    this.attribute = attributeOf(labels[labelIndex]!);
    this.version = `onnx-classifier sha256:${modelHash} label ${labels[labelIndex]}`;
  }

  static async load(dir: string, opts: OnnxClassifierOptions = {}): Promise<OnnxClassifierScorer> {
    const hint =
      'pass a folder with model.onnx, tokenizer.json and config.json (e.g. `optimum-cli export onnx --task text-classification`)';
    for (const f of ['model.onnx', 'tokenizer.json', 'config.json']) {
      if (!existsSync(join(dir, f)))
        throw new LmSteerError('NOT_FOUND', `onnx-classifier: ${join(dir, f)} does not exist`, hint);
    }
    let cfg: Config;
    try {
      cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
    } catch (e) {
      throw new LmSteerError('BAD_FILE', `onnx-classifier: ${join(dir, 'config.json')} is not valid JSON`, hint, {
        cause: e,
      });
    }
    const id2label = cfg.id2label;
    if (!id2label || typeof id2label !== 'object' || Object.keys(id2label).length < 2) {
      throw new LmSteerError(
        'BAD_FILE',
        `onnx-classifier: ${join(dir, 'config.json')} has no id2label with at least two labels`,
        'a sequence-classification config names its labels in id2label',
      );
    }
    const labels: string[] = [];
    for (const [k, v] of Object.entries(id2label)) labels[Number(k)] = String(v);
    if (labels.some((l) => l === undefined) || labels.length !== Object.keys(id2label).length) {
      throw new LmSteerError(
        'BAD_FILE',
        `onnx-classifier: id2label keys must be 0..n-1 (got ${Object.keys(id2label).join(', ')})`,
      );
    }
    const labelIndex = pickLabel(labels, opts.label);
    const bytes = readFileSync(join(dir, 'model.onnx'));
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: opts.threads ?? 0,
      graphOptimizationLevel: 'all',
    });
    for (const need of ['input_ids', 'attention_mask']) {
      if (!session.inputNames.includes(need)) {
        throw new LmSteerError(
          'UNSUPPORTED',
          `onnx-classifier: ${join(dir, 'model.onnx')} has no input '${need}' (inputs: ${session.inputNames.join(', ')})`,
          hint,
        );
      }
    }
    const maxLength = Math.min(cfg.max_position_embeddings ?? 512, 512);
    const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    return new OnnxClassifierScorer(
      session,
      HfTokenizer.fromDir(dir),
      cfg,
      labelIndex,
      labels,
      hash,
      maxLength,
      opts.batchSize ?? 32,
    );
  }

  /** Probabilities of every label for each text. */
  async probabilities(texts: readonly string[]): Promise<number[][]> {
    const out: number[][] = [];
    for (let s = 0; s < texts.length; s += this.batchSize)
      out.push(...(await this.run(texts.slice(s, s + this.batchSize))));
    return out;
  }

  async score(texts: readonly string[]): Promise<number[]> {
    return (await this.probabilities(texts)).map((p) => p[this.labelIndex]!);
  }

  private async run(texts: readonly string[]): Promise<number[][]> {
    if (texts.length === 0) return [];
    const rows = texts.map((t) => {
      const ids = this.tokenizer.encode(t);
      // Keep the final special token (e.g. [SEP]) when cutting, as HF truncation does.
      if (ids.length <= this.maxLength) return ids;
      const last = ids[ids.length - 1]!;
      return this.tokenizer.isSpecial(last)
        ? [...ids.slice(0, this.maxLength - 1), last]
        : ids.slice(0, this.maxLength);
    });
    const B = rows.length;
    const T = Math.max(1, ...rows.map((r) => r.length));
    const pad = this.tokenizer.padId ?? this.cfg.pad_token_id ?? 0;
    const ids = new BigInt64Array(B * T).fill(BigInt(pad));
    const mask = new BigInt64Array(B * T);
    rows.forEach((r, b) => r.forEach((id, t) => ((ids[b * T + t] = BigInt(id)), (mask[b * T + t] = 1n))));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, T]),
      attention_mask: new ort.Tensor('int64', mask, [B, T]),
    };
    if (this.session.inputNames.includes('token_type_ids'))
      feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(B * T), [B, T]);
    const res = await this.session.run(feeds);
    const logits = res[this.session.outputNames[0]!] as ort.Tensor;
    const L = this.labels.length;
    if (logits.dims.length !== 2 || logits.dims[0] !== B || logits.dims[1] !== L) {
      throw new LmSteerError(
        'SHAPE_MISMATCH',
        `onnx-classifier: output '${this.session.outputNames[0]}' has shape [${logits.dims}], expected [${B}, ${L}] (one logit per id2label entry)`,
      );
    }
    const data = logits.data as Float32Array;
    const multi = this.cfg.problem_type === 'multi_label_classification';
    return rows.map((_, b) => {
      const z = Array.from(data.subarray(b * L, (b + 1) * L));
      if (multi) return z.map((x) => 1 / (1 + Math.exp(-x)));
      const m = Math.max(...z);
      const e = z.map((x) => Math.exp(x - m));
      const s = e.reduce((a, x) => a + x, 0);
      return e.map((x) => x / s);
    });
  }
}

/** The label index to score: asked for by name or index, else the one id2label names positive/toxic. */
export function pickLabel(labels: readonly string[], wanted?: string): number {
  const list = labels.map((l, i) => `${i}=${l}`).join(', ');
  if (wanted !== undefined) {
    const byName = labels.findIndex((l) => l.toLowerCase() === wanted.toLowerCase());
    if (byName >= 0) return byName;
    if (/^\d+$/.test(wanted) && Number(wanted) < labels.length) return Number(wanted);
    throw new LmSteerError('NOT_FOUND', `onnx-classifier has no label "${wanted}"`, `its labels are ${list}`);
  }
  const hits = labels.map((l, i) => [l, i] as const).filter(([l]) => KNOWN_LABELS.some(([re]) => re.test(l)));
  if (hits.length === 1) return hits[0]![1];
  throw new LmSteerError(
    'BAD_ARGUMENT',
    `onnx-classifier cannot tell which label to score (labels: ${list})`,
    'name it with --scorer-label, e.g. --scorer-label POSITIVE',
  );
}
