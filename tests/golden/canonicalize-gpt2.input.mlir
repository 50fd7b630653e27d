// Golden input: the IR immediately before one pass; tests/test_golden.py runs that pass on it
// and compares the result with canonicalize-gpt2.expected.mlir. Regenerate: python tools/golden.py --write
// case: canonicalize-gpt2
// pass: canonicalize
// model: gpt2-tiny shrunk to 1 layer, hidden 32, 4 heads, MLP 128, vocab 64, context 64
// preceded by: no pass: the frontend's IR, as kiln.frontend.import_model captures it (the first pass of pipeline
//   'default')
// weights: none in the text; the test gives each a tensor drawn from a generator seeded by its name and type
//   (tools/golden.py: golden_weight)
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.reshape"(%input_ids) {shape = ["B", "T"]} : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %1 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %0) : (tensor<64x32xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %3 = "kiln.weight"() {name = "transformer.wpe.weight"} : () -> tensor<64x32xf32>
    %4 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %5 = "kiln.slice"(%4) {dim = 0, end = 1, start = 0} : (tensor<?x?xi64, "B,T">) -> tensor<1x?xi64, "T">
    %6 = "kiln.embedding"(%3, %5) : (tensor<64x32xf32>, tensor<1x?xi64, "T">) -> tensor<1x?x32xf32, "T">
    %7 = "kiln.add"(%2, %6) : (tensor<?x?x32xf32, "B,T">, tensor<1x?x32xf32, "T">) -> tensor<?x?x32xf32, "B,T">
    %8 = "kiln.weight"() {name = "transformer.h.0.ln_1.weight"} : () -> tensor<32xf32>
    %9 = "kiln.weight"() {name = "transformer.h.0.ln_1.bias"} : () -> tensor<32xf32>
    %10 = "kiln.layer_norm"(%7, %8, %9) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %11 = "kiln.reshape"(%10) {shape = ["B*T", 32]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x32xf32, "B*T">
    %12 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.bias"} : () -> tensor<96xf32>
    %13 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.weight"} : () -> tensor<32x96xf32>
    %14 = "kiln.transpose"(%13) {dim0 = 0, dim1 = 1} : (tensor<32x96xf32>) -> tensor<96x32xf32>
    %15 = "kiln.linear"(%11, %14, %12) : (tensor<?x32xf32, "B*T">, tensor<96x32xf32>, tensor<96xf32>) -> tensor<?x96xf32, "B*T">
    %16 = "kiln.reshape"(%15) {shape = ["B", "T", 96]} : (tensor<?x96xf32, "B*T">) -> tensor<?x?x96xf32, "B,T">
    %17 = "kiln.slice"(%16) {dim = 2, end = 32, start = 0} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %18 = "kiln.slice"(%16) {dim = 2, end = 64, start = 32} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %19 = "kiln.slice"(%16) {dim = 2, end = 96, start = 64} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %20 = "kiln.reshape"(%18) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %21 = "kiln.transpose"(%20) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %22 = "kiln.reshape"(%19) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %23 = "kiln.transpose"(%22) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %24 = "kiln.reshape"(%17) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %25 = "kiln.transpose"(%24) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %26 = "kiln.attention"(%25, %21, %23) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %27 = "kiln.reshape"(%26) {shape = ["B", 4, "T", 8]} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %28 = "kiln.transpose"(%27) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %29 = "kiln.reshape"(%28) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %30 = "kiln.reshape"(%29) {shape = ["B*T", 32]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x32xf32, "B*T">
    %31 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.bias"} : () -> tensor<32xf32>
    %32 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.weight"} : () -> tensor<32x32xf32>
    %33 = "kiln.transpose"(%32) {dim0 = 0, dim1 = 1} : (tensor<32x32xf32>) -> tensor<32x32xf32>
    %34 = "kiln.linear"(%30, %33, %31) : (tensor<?x32xf32, "B*T">, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x32xf32, "B*T">
    %35 = "kiln.reshape"(%34) {shape = ["B", "T", 32]} : (tensor<?x32xf32, "B*T">) -> tensor<?x?x32xf32, "B,T">
    %36 = "kiln.add"(%35, %7) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %37 = "kiln.weight"() {name = "transformer.h.0.ln_2.weight"} : () -> tensor<32xf32>
    %38 = "kiln.weight"() {name = "transformer.h.0.ln_2.bias"} : () -> tensor<32xf32>
    %39 = "kiln.layer_norm"(%36, %37, %38) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %40 = "kiln.reshape"(%39) {shape = ["B*T", 32]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x32xf32, "B*T">
    %41 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.bias"} : () -> tensor<128xf32>
    %42 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.weight"} : () -> tensor<32x128xf32>
    %43 = "kiln.transpose"(%42) {dim0 = 0, dim1 = 1} : (tensor<32x128xf32>) -> tensor<128x32xf32>
    %44 = "kiln.linear"(%40, %43, %41) : (tensor<?x32xf32, "B*T">, tensor<128x32xf32>, tensor<128xf32>) -> tensor<?x128xf32, "B*T">
    %45 = "kiln.reshape"(%44) {shape = ["B", "T", 128]} : (tensor<?x128xf32, "B*T">) -> tensor<?x?x128xf32, "B,T">
    %46 = "kiln.gelu"(%45) {approximate = "tanh"} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x128xf32, "B,T">
    %47 = "kiln.reshape"(%46) {shape = ["B*T", 128]} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x128xf32, "B*T">
    %48 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.bias"} : () -> tensor<32xf32>
    %49 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.weight"} : () -> tensor<128x32xf32>
    %50 = "kiln.transpose"(%49) {dim0 = 0, dim1 = 1} : (tensor<128x32xf32>) -> tensor<32x128xf32>
    %51 = "kiln.linear"(%47, %50, %48) : (tensor<?x128xf32, "B*T">, tensor<32x128xf32>, tensor<32xf32>) -> tensor<?x32xf32, "B*T">
    %52 = "kiln.reshape"(%51) {shape = ["B", "T", 32]} : (tensor<?x32xf32, "B*T">) -> tensor<?x?x32xf32, "B,T">
    %53 = "kiln.add"(%36, %52) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %54 = "kiln.weight"() {name = "transformer.ln_f.weight"} : () -> tensor<32xf32>
    %55 = "kiln.weight"() {name = "transformer.ln_f.bias"} : () -> tensor<32xf32>
    %56 = "kiln.layer_norm"(%53, %54, %55) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %57 = "kiln.reshape"(%56) {shape = ["B", "T", 32]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %58 = "kiln.linear"(%57, %1) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%58) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "gpt2", max_positions = 64, vocab_size = 64}} : () -> ()
