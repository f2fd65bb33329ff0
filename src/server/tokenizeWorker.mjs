// Entry of the server's tokenizing thread (promptEncoder.ts). Worker threads do not inherit tsx's loader (not
// even from `node --import tsx`), so this plain-JS entry registers it before loading the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./tokenizeWorker.ts');
