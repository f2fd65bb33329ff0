// node-llama-cpp is installed into bench/peer on first `npm run bench` (see bench/peer.ts), not into the
// project, so its types are not available to the project's typecheck; the bench uses it untyped.
declare module 'node-llama-cpp';
