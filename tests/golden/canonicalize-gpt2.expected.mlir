// Golden output: canonicalize-gpt2.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: canonicalize-gpt2
// pass: canonicalize
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
    %11 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.weight"} : () -> tensor<32x96xf32>
    %12 = "kiln.transpose"(%11) {dim0 = 0, dim1 = 1} : (tensor<32x96xf32>) -> tensor<96x32xf32>
    %13 = "kiln.linear"(%9, %12, %10) : (tensor<?x?x32xf32, "B,T">, tensor<96x32xf32>, tensor<96xf32>) -> tensor<?x?x96xf32, "B,T">
    %14 = "kiln.slice"(%13) {dim = 2, end = 32, start = 0} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %15 = "kiln.slice"(%13) {dim = 2, end = 64, start = 32} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %16 = "kiln.slice"(%13) {dim = 2, end = 96, start = 64} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %17 = "kiln.reshape"(%15) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %19 = "kiln.reshape"(%16) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %20 = "kiln.transpose"(%19) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %21 = "kiln.reshape"(%14) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %22 = "kiln.transpose"(%21) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %23 = "kiln.attention"(%22, %18, %20) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %25 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.bias"} : () -> tensor<32xf32>
    %26 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.transpose"(%26) {dim0 = 0, dim1 = 1} : (tensor<32x32xf32>) -> tensor<32x32xf32>
    %28 = "kiln.reshape"(%24) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %29 = "kiln.linear"(%28, %27, %25) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %30 = "kiln.add"(%29, %6) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %31 = "kiln.weight"() {name = "transformer.h.0.ln_2.weight"} : () -> tensor<32xf32>
    %32 = "kiln.weight"() {name = "transformer.h.0.ln_2.bias"} : () -> tensor<32xf32>
    %33 = "kiln.layer_norm"(%30, %31, %32) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %34 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.bias"} : () -> tensor<128xf32>
    %35 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.weight"} : () -> tensor<32x128xf32>
    %36 = "kiln.transpose"(%35) {dim0 = 0, dim1 = 1} : (tensor<32x128xf32>) -> tensor<128x32xf32>
    %37 = "kiln.linear"(%33, %36, %34) : (tensor<?x?x32xf32, "B,T">, tensor<128x32xf32>, tensor<128xf32>) -> tensor<?x?x128xf32, "B,T">
    %38 = "kiln.gelu"(%37) {approximate = "tanh"} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x128xf32, "B,T">
    %39 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.bias"} : () -> tensor<32xf32>
    %40 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.weight"} : () -> tensor<128x32xf32>
    %41 = "kiln.transpose"(%40) {dim0 = 0, dim1 = 1} : (tensor<128x32xf32>) -> tensor<32x128xf32>
    %42 = "kiln.linear"(%38, %41, %39) : (tensor<?x?x128xf32, "B,T">, tensor<32x128xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %43 = "kiln.add"(%30, %42) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %44 = "kiln.weight"() {name = "transformer.ln_f.weight"} : () -> tensor<32xf32>
    %45 = "kiln.weight"() {name = "transformer.ln_f.bias"} : () -> tensor<32xf32>
    %46 = "kiln.layer_norm"(%43, %44, %45) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %47 = "kiln.linear"(%46, %0) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%47) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "gpt2", max_positions = 64, vocab_size = 64}} : () -> ()
