/**
 * Text generation: token choice, the prefill/decode loop, streaming and the image-job pipeline.
 * @module
 */
export {
  generate,
  type GenerateOptions,
  type GenerateResult,
  type StopReason,
} from "./generate.ts";
export { type Job, type JobResult, type JobTimings, runJobs, type RunOptions } from "./pipeline.ts";
export { type Rng, seededRng } from "./rng.ts";
export {
  argmax,
  GREEDY,
  isSampling,
  pickToken,
  type SamplingOptions,
  samplingProbs,
  topKIndices,
} from "./sampling.ts";
export { TextStreamer } from "./stream.ts";
