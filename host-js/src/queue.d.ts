export interface DeviceState {
  battery?: { level: number; charging: boolean };
  pressure?: "nominal" | "fair" | "serious" | "critical";
}
export interface Limits {
  concurrency: number;
  delayMs: number;
  pauseNonUrgent: boolean;
  reason?: string;
}
export type Source = (emit: (patch: Partial<DeviceState>) => void) => (() => void) | Promise<() => void>;

export declare function throttlePolicy(state: DeviceState): Limits;
export declare function batterySource(onChange: (b: { level: number; charging: boolean }) => void, nav?: Navigator): Promise<() => void>;
export declare function pressureSource(onChange: (state: DeviceState["pressure"]) => void, Observer?: unknown): Promise<() => void>;

export declare class JobQueue {
  constructor(options?: { policy?: (state: DeviceState) => Limits; sources?: Source[] });
  update(patch: Partial<DeviceState>): void;
  readonly limits: Limits;
  readonly pending: number;
  readonly running: number;
  add<T>(fn: () => T | Promise<T>, options?: { urgent?: boolean }): Promise<T>;
  close(): void;
}
