/**
 * Import this module before onnxruntime-node (it has only this side effect). onnxruntime-node 1.30's
 * telemetry (Microsoft's 1DS SDK, linked into libonnxruntime.so) starts with the first session: it runs a
 * regex over /proc/self/cmdline that overflows the stack on a long command line (SIGSEGV, exit 139, with a
 * 40 KB `--prompt`), writes a device id and an event database under ~/.cache/Microsoft/DeveloperTools and an
 * empty /tmp/mat-debug-<pid>.log per process. Its only switch is the environment variable below, read when
 * the first session is created; setting it here (before the native module loads) covers every process
 * that imports lmsteer, and child processes inherit it. bin/lmsteer.mjs sets it too, as its first statement.
 */
process.env.ORT_DISABLE_TELEMETRY = '1';

export {};
