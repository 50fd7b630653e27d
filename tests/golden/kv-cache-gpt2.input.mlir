// Golden input: the IR immediately before one pass; tests/test_golden.py runs that pass on it
// and compares the result with kv-cache-gpt2.expected.mlir. Regenerate: python tools/golden.py --write
// case: kv-cache-gpt2
// pass: kv-cache
// model: gpt2-tiny shrunk to 1 layer, hidden 32, 4 heads, MLP 128, vocab 64, context 64
// preceded by: canonicalize, fold-constants, cse, dce, fuse-qkv, fuse-gate-up, canonicalize, cse, dce (pipeline
//   'default', its first 9 passes)
// weights: none in the text; the test gives each a tensor drawn from a generator seeded by its name and type
//   (tools/golden.py: golden_weight)
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %1 = "kiln.embedding"(%0, %input_ids) : (tensor<64x32xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %2 = "kiln.weight"() {name = "transformer.wpe.weight"} : () -> tensor<64x32xf32>
    %3 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %4 = "kiln.slice"(%3) {dim = 0, end = 1, start = 0} : (tensor<?x?xi64, "B,T">) -> tensor<1x?xi64, "T">
    %5 = "kiln.embedding"(%2, %4) : (tensor<64x32xf32>, tensor<1x?xi64, "T">) -> tensor<1x?x32xf32, "T">
    %6 = "kiln.add"(%1, %5) : (tensor<?x?x32xf32, "B,T">, tensor<1x?x32xf32, "T">) -> tensor<?x?x32xf32, "B,T">
    %7 = "kiln.weight"() {name = "transformer.h.0.ln_1.weight"} : () -> tensor<32xf32>
    %8 = "kiln.weight"() {name = "transformer.h.0.ln_1.bias"} : () -> tensor<32xf32>
    %9 = "kiln.layer_norm"(%6, %7, %8) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %10 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.bias"} : () -> tensor<96xf32>
    %11 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.weight.transpose"} : () -> tensor<96x32xf32>
    %12 = "kiln.linear"(%9, %11, %10) : (tensor<?x?x32xf32, "B,T">, tensor<96x32xf32>, tensor<96xf32>) -> tensor<?x?x96xf32, "B,T">
    %13 = "kiln.slice"(%12) {dim = 2, end = 32, start = 0} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %14 = "kiln.slice"(%12) {dim = 2, end = 64, start = 32} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %15 = "kiln.slice"(%12) {dim = 2, end = 96, start = 64} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %16 = "kiln.reshape"(%14) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %17 = "kiln.transpose"(%16) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %18 = "kiln.reshape"(%15) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %19 = "kiln.transpose"(%18) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %20 = "kiln.reshape"(%13) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %21 = "kiln.transpose"(%20) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %22 = "kiln.attention"(%21, %17, %19) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %23 = "kiln.transpose"(%22) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %24 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.bias"} : () -> tensor<32xf32>
    %25 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.weight.transpose"} : () -> tensor<32x32xf32>
    %26 = "kiln.reshape"(%23) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %27 = "kiln.linear"(%26, %25, %24) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %28 = "kiln.add"(%27, %6) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %29 = "kiln.weight"() {name = "transformer.h.0.ln_2.weight"} : () -> tensor<32xf32>
    %30 = "kiln.weight"() {name = "transformer.h.0.ln_2.bias"} : () -> tensor<32xf32>
    %31 = "kiln.layer_norm"(%28, %29, %30) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %32 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.bias"} : () -> tensor<128xf32>
    %33 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.weight.transpose"} : () -> tensor<128x32xf32>
    %34 = "kiln.linear"(%31, %33, %32) : (tensor<?x?x32xf32, "B,T">, tensor<128x32xf32>, tensor<128xf32>) -> tensor<?x?x128xf32, "B,T">
    %35 = "kiln.gelu"(%34) {approximate = "tanh"} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x128xf32, "B,T">
    %36 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.bias"} : () -> tensor<32xf32>
    %37 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.weight.transpose"} : () -> tensor<32x128xf32>
    %38 = "kiln.linear"(%35, %37, %36) : (tensor<?x?x128xf32, "B,T">, tensor<32x128xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %39 = "kiln.add"(%28, %38) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %40 = "kiln.weight"() {name = "transformer.ln_f.weight"} : () -> tensor<32xf32>
    %41 = "kiln.weight"() {name = "transformer.ln_f.bias"} : () -> tensor<32xf32>
    %42 = "kiln.layer_norm"(%39, %40, %41) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %43 = "kiln.linear"(%42, %0) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%43) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "gpt2", max_positions = 64, vocab_size = 64}} : () -> ()
