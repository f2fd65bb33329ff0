/**
 * `import … from 'lmsteer'`: the library's entry point, a plain list of what the modules below export (their doc
 * comments are the reference). Load a model, load a steer for it, generate:
 *
 * ```ts
 * import { generate, loadModel, shippedSteerDir, SteerSet } from 'lmsteer';
 *
 * const model = await loadModel(); // the embedded default, stories260K
 * const steers = SteerSet.load(model, [shippedSteerDir('stories260K-sentiment')!]);
 * const [result] = await generate(
 *   model.decoder,
 *   model.tokenizer,
 *   [{ prompt: 'Once upon a time', steerScale: steers.resolve({ sentiment: 8 }).scale }],
 *   { maxNewTokens: 32, seed: 1, steer: steers.directions },
 * );
 * console.log(result!.samples[0]!.text);
 * model.close();
 * ```
 *
 * @packageDocumentation
 */

// models
export { DEFAULT_MODEL, loadModel, locateModelSpec } from './runtime/loadModel.js';
export type { LoadedModel, LoadModelOptions } from './runtime/loadModel.js';
export type { HubDownloadOptions } from './formats/hub.js';
export type { LocalModel } from './formats/modelFiles.js';
export type { WeightStore } from './formats/weights.js';
export type { Arch, DecoderConfig, RopeScaling } from './models/config.js';
export type { Decoder, ForwardResult, KvSlots, SteerDirections, SteerInputs } from './runtime/decoder.js';
export type { Tokenizer } from './tokenizer/tokenizer.js';

// generation
export { generate } from './runtime/generate.js';
export type {
  FinishReason,
  GenerateHooks,
  GenerateOptions,
  GenerateRequest,
  GenerateResult,
  GeneratedSample,
  RowOrigin,
  SampleSettings,
} from './runtime/generate.js';

// steers
export { loadSteer, saveSteer } from './steer/steerFile.js';
export type { LoadSteerOptions } from './steer/steerFile.js';
export { SteerSet, DEFAULT_MAX_STEER_VALUE } from './steer/steerSet.js';
export type { LoadedSteer, SteerBase, SteerInfo, SteerSetOptions } from './steer/steerSet.js';
export type { PackedSteers } from './steer/pack.js';
export { BASE_SLOT, embeddingFingerprint } from './steer/steer.js';
export type {
  BaseModelInfo,
  Steer,
  SteerConfig,
  SteerSlot,
  SteerSourceInfo,
  SteerTrainingInfo,
} from './steer/steer.js';
export { exportLora, fixedTerms, headDelta, loraWeights } from './steer/lora.js';
export type { AdapterPlan, HeadDelta, LoraExportOptions, SteerTerm, WrittenAdapter } from './steer/lora.js';
export { exportReferenceSteer } from './steer/referenceExport.js';
export { importReferenceSteer } from './steer/referenceImport.js';
export type { ImportSteerOptions, ImportTarget } from './steer/referenceImport.js';

// training
export { runTraining } from './train/run.js';
export type { Throughput, TrainRunOptions, TrainRunResult } from './train/run.js';
export type { TrainExample, TrainOptions, TrainResult } from './train/trainLoop.js';
export type { DataFormat, Dataset, DatasetSummary, Example } from './train/data.js';
export type { LossPoint } from './train/checkpoint.js';

// evaluation
export { runEval, parseShard, parseSweep, PAPER_SAMPLING } from './eval/run.js';
export type {
  EvalDeps,
  EvalModel,
  EvalOptions,
  EvalResult,
  SampleGenerator,
  SamplingSettings,
  SettingRequest,
  SettingResult,
  Shard,
  Sweep,
} from './eval/run.js';
export { EndpointGenerator } from './eval/endpoint.js';
export type { EndpointExpectations, EndpointOptions } from './eval/endpoint.js';
export { mergeShards } from './eval/merge.js';
export type { EvalReport, EvalRow, ReferenceRow } from './eval/report.js';
export type { Scorer } from './eval/scorers/scorer.js';
export type { FluencyModel } from './eval/fluency.js';

// explanation, transfer
export { explainSteerDims, explainText } from './lens/explain.js';
export type {
  DimsModel,
  ExplainDimsOptions,
  ExplainTextOptions,
  SteerDimsReport,
  TextExplanation,
  TextModel,
} from './lens/explain.js';
export type { ScoredToken, SteerDim } from './lens/dims.js';
export type { SpanOptions } from './lens/spans.js';
export { transferSteerBetweenModels } from './transfer/run.js';
export type { TransferModel, TransferModelsOptions, TransferReport } from './transfer/run.js';

// files shipped in the package, errors, tensors
export { embeddedModelDir, PACKAGE_VERSION, shippedSteerDir, SHIPPED_STEERS_DIR } from './util/packageFiles.js';
export { LmSteerError } from './util/errors.js';
export type { ErrorCode } from './util/errors.js';
export { tensor } from './util/tensor.js';
export type { DType, Tensor, TypedArrayOf } from './util/tensor.js';
