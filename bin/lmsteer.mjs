#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so there is no build step between a clone and a run.
import { register } from 'tsx/esm/api';

// ONNX Runtime's telemetry crashes on long command lines and writes files per process; it reads this variable
// when the first session starts (see src/util/ortTelemetryOff.ts). Child processes inherit it.
process.env.ORT_DISABLE_TELEMETRY = '1';
register();
await import('../src/cli/main.ts');
