// Types of fiqa.js, the module a page imports from a fiqa-edge web bundle.

/** A minimum quality as the CLI takes it: a score ('0.62' or 0.62), a percentile ('30p') or a 0-100 quality ('55q'). */
export type MinQuality = string | number | null;

/** [x0, y0, x1, y1] in the image's pixels. */
export type Box = [number, number, number, number];

/** What can be scored: a file, a URL, a decoded image, or the current frame of a video or canvas. */
export type ImageSource = Blob | string | URL | ImageBitmap | ImageData | HTMLVideoElement | HTMLCanvasElement
  | HTMLImageElement;

/** Where a score stands: null where the model records no scale, or (accepted) where no minimum quality is set. */
export interface Placement {
  percentile: number | null;
  quality: number | null;
  accepted: boolean | null;
}

export interface ScoreResult extends Placement {
  score: number;
  ms: { decode: number; preprocess: number; inference: number; total: number };
}

export interface FaceResult extends Placement {
  box: Box;
  /** x, y of: the eye on the image's left, the other eye, nose tip, mouth centre, the ear on the left, the other ear */
  keypoints: [number, number][];
  /** the detector's confidence, 0-1 */
  confidence: number;
  score: number;
  /** the aligned crop the model scored, when asked for with `crops: true` */
  crop: ImageBitmap | null;
}

export interface FaceOptions {
  /** 'both' (default, as `fiqa-edge score --detect`), 'short' (faces near the camera) or 'full' */
  detector?: 'both' | 'short' | 'full';
  /** also search tiles of a large image (default true) */
  tiles?: boolean;
  /** drop faces narrower than this, px */
  minFace?: number;
  /** keep at most this many faces, the most confident */
  maxFaces?: number | null;
  /** return each aligned crop as an ImageBitmap */
  crops?: boolean;
  /** overrides the scorer's minQuality for this call */
  minQuality?: MinQuality;
}

export interface CaptureOptions {
  seconds?: number;
  minQuality?: MinQuality;
  onFrame?: ((frame: { faces: FaceResult[]; frame: number; best: FaceResult | null }) => void) | null;
  detector?: 'both' | 'short' | 'full';
  tiles?: boolean;
}

export interface Capture {
  /** PNG of the best aligned face, or null when no frame passed */
  crop: Blob | null;
  face: FaceResult | null;
  /** the whole frame the best face was in */
  frame: ImageBitmap | null;
  frames: number;
  /** why nothing was kept (no face, several faces, below the minimum quality), or null */
  reason: string | null;
}

/** The settings `capture` uses unless told otherwise: the short-range detector on the whole frame. */
export const CAMERA: { detector: 'short'; tiles: false };

export class FaceQualityScorer {
  static load(bundleUrl?: string | URL,
              options?: { backend?: 'wasm' | 'webgpu'; threads?: number; minQuality?: MinQuality }): Promise<FaceQualityScorer>;
  /** the bundle's fiqa.json */
  readonly manifest: Record<string, any>;
  readonly backend: string;
  readonly threads: number;
  readonly crossOriginIsolated: boolean;
  /** what runs the quality model */
  readonly runtime: 'LiteRT.js' | 'onnxruntime-web';
  readonly runtimeVersion: string | null;
  readonly loadMs: number;
  /** the model's score scale, or null */
  readonly scale: { percentile(score: number): number; quality(score: number): number } | null;
  /** the bundle's detect/settings.json, or null for a bundle without face detection */
  readonly detection: Record<string, any> | null;
  /** milliseconds of each step of the last scoreFaces call */
  readonly lastMs: { decode: number; detect: number; align: number; score: number; total: number } | null;
  minQuality: MinQuality;
  /** every face in an image, most confident first ([] when there is none) */
  scoreFaces(source: ImageSource, options?: FaceOptions): Promise<FaceResult[]>;
  /** the best face a camera shows in a few seconds (a MediaStream, or a playing video) */
  capture(source: MediaStream | HTMLVideoElement, options?: CaptureOptions): Promise<Capture>;
  /** the whole image scored as one already cropped face */
  score(source: ImageSource): Promise<ScoreResult>;
  /** the model input made of an image (3 × N × N, CHW) */
  tensor(source: ImageSource): Promise<Float32Array>;
  /** seconds of each of n model runs on a batch of the last scored faces */
  time(batch?: number, n?: number): Promise<number[]>;
  close(): void;
}
