/**
 * `import … from 'lmsteer'`: the library's entry point. Start with `Model` (src/api/model.ts) — open a model,
 * load steers for it, generate / stream / inspect steered text, train a steer, evaluate, explain — and
 * `SteerSet`, the one way named steer values reach the model. The lower-level pieces the CLI is built from
 * follow (decoders, generate(), steer files, training and evaluation runs); docs/API.md explains the shape.
 *
 * ```ts
 * import { Model } from 'lmsteer';
 *
 * const model = await Model.open(); // the embedded default, stories260K
 * const mood = model.steers('stories260K-sentiment'); // a steer shipped with lmsteer, or steer folders
 * for (const sentiment of [-8, 0, 8]) {
 *   console.log(sentiment, await model.generate('Once upon a time', { steers: mood, values: { sentiment }, seed: 1 }));
 * }
 * model.close();
 * ```
 *
 * @packageDocumentation
 */

// the library's front door
export { Model, SteeredModel, serve, transferSteer } from './api/model.js';
export type {
  EvaluateOptions,
  GenerateCallOptions,
  PromptRequest,
  SteerChoice,
  TrainSteerOptions,
} from './api/model.js';
export type { Inspection, InspectedToken } from './runtime/inspect.js';
export { inspectIds } from './runtime/inspect.js';
export type { RunningServer, ServerOptions } from './server/server.js';

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
