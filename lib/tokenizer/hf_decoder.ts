/**
 * The decoders of a `tokenizer.json` that Gemma uses (Replace, ByteFallback, Fuse, Strip), written
 * to give what the Rust `tokenizers` library gives: a byte run that is not valid UTF-8 becomes one
 * U+FFFD per byte, and a leading U+FEFF is kept.
 * @module
 */

/** Turns a list of tokens into text. */
export type TokenDecoder = (tokens: readonly string[]) => string;

type Step = (tokens: string[]) => string[];

const REPLACEMENT = "\uFFFD";
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function byteOfToken(token: string): number | undefined {
  if (token.length !== 6 || !token.startsWith("<0x") || !token.endsWith(">")) return undefined;
  const hex = token.slice(3, 5);
  return /^[0-9A-Fa-f]{2}$/.test(hex) ? parseInt(hex, 16) : undefined;
}

function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let run: number[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    try {
      out.push(strictUtf8.decode(Uint8Array.from(run)));
    } catch {
      for (let i = 0; i < run.length; i++) out.push(REPLACEMENT);
    }
    run = [];
  };
  for (const token of tokens) {
    const byte = byteOfToken(token);
    if (byte !== undefined) {
      run.push(byte);
    } else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}

function stripStep(content: string, start: number, stop: number): Step {
  return (tokens) =>
    tokens.map((token) => {
      const chars = [...token];
      let a = 0;
      while (a < start && a < chars.length && chars[a] === content) a++;
      let b = chars.length;
      let removed = 0;
      while (removed < stop && b > a && chars[b - 1] === content) {
        b--;
        removed++;
      }
      return chars.slice(a, b).join("");
    });
}

function buildStep(config: unknown): Step | null {
  if (!isRecord(config)) return null;
  switch (config.type) {
    case "Sequence": {
      const parts = Array.isArray(config.decoders) ? config.decoders.map(buildStep) : [null];
      if (parts.some((p) => p === null)) return null;
      const steps = parts as Step[];
      return (tokens) => steps.reduce((acc, step) => step(acc), tokens);
    }
    case "Replace": {
      const pattern = isRecord(config.pattern) ? config.pattern.String : undefined;
      const content = config.content;
      if (typeof pattern !== "string" || typeof content !== "string") return null;
      return (tokens) => tokens.map((t) => t.replaceAll(pattern, content));
    }
    case "ByteFallback":
      return byteFallback;
    case "Fuse":
      return (tokens) => [tokens.join("")];
    case "Strip": {
      const { content, start, stop } = config;
      if (typeof content !== "string" || [...content].length !== 1) return null;
      if (typeof start !== "number" || typeof stop !== "number") return null;
      return stripStep(content, start, stop);
    }
    default:
      return null;
  }
}

/**
 * Builds a decoder from the `decoder` entry of a `tokenizer.json`, or returns null when it uses a
 * step this module does not implement (the caller then uses the library's decoder).
 */
export function buildTokenDecoder(config: unknown): TokenDecoder | null {
  const step = buildStep(config);
  if (step === null) return null;
  return (tokens) => step([...tokens]).join("");
}

/** transformers' `clean_up_tokenization`: removes spaces before punctuation and contractions. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
