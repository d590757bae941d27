import { notImplemented } from "./command.ts";

/** `inspect`: print a checkpoint's format, config, parameter counts and dtypes. */
export const inspectCommand = notImplemented(
  "inspect",
  "show a checkpoint's format, config and sizes",
  `Usage: pg inspect <checkpoint> [--json]

Prints the detected format (HF safetensors folder, big_vision .npz, ONNX folder), the model
config, parameter counts per part (vision, projector, text), dtypes and total bytes.

Options:
  --json    one JSON object on stdout`,
);
