// Hive Gateway as the public benchmark runs it: --jit on the command line, in-flight dedupe here.
export const gatewayConfig = { inboundInflightRequestDeduplication: true };
