// Golden input: the IR immediately before one pass; tests/test_golden.py runs that pass on it
// and compares the result with quantize-weights-int4.expected.mlir. Regenerate: python tools/golden.py --write
// case: quantize-weights-int4
// pass: quantize-weights{format=int4,group_size=32}
// model: llama-tiny shrunk to 1 layer, hidden 32, 4 heads / 2 KV heads (head dim 8), MLP 64, vocab 64, context 64
// preceded by: canonicalize, fold-constants, cse, dce, fuse-qkv, fuse-gate-up, canonicalize, cse, dce (pipeline
//   'int4', its first 9 passes)
// weights: none in the text; the test gives each a tensor drawn from a generator seeded by its name and type
//   (tools/golden.py: golden_weight)
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %1 = "kiln.embedding"(%0, %input_ids) : (tensor<64x32xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %2 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %3 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %4 = "kiln.rms_norm"(%1, %3) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %5 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %6 = "kiln.linear"(%4, %5) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    %7 = "kiln.slice"(%6) {dim = 2, end = 32, start = 0} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %8 = "kiln.slice"(%6) {dim = 2, end = 48, start = 32} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %9 = "kiln.slice"(%6) {dim = 2, end = 64, start = 48} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %10 = "kiln.reshape"(%7) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %11 = "kiln.transpose"(%10) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %12 = "kiln.reshape"(%8) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %13 = "kiln.transpose"(%12) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %14 = "kiln.reshape"(%9) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %15 = "kiln.transpose"(%14) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %16 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %17 = "kiln.rope_cos"(%16, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %18 = "kiln.slice"(%17) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %19 = "kiln.rope_sin"(%16, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %20 = "kiln.slice"(%19) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %21 = "kiln.rope"(%11, %18, %20) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %22 = "kiln.rope"(%13, %18, %20) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %23 = "kiln.attention"(%21, %22, %15) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %25 = "kiln.reshape"(%24) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %26 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.linear"(%25, %26) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>) -> tensor<?x?x32xf32, "B,T">
    %28 = "kiln.add"(%1, %27) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %29 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %30 = "kiln.rms_norm"(%28, %29) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %31 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %32 = "kiln.linear"(%30, %31) : (tensor<?x?x32xf32, "B,T">, tensor<128x32xf32>) -> tensor<?x?x128xf32, "B,T">
    %33 = "kiln.slice"(%32) {dim = 2, end = 64, start = 0} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %34 = "kiln.slice"(%32) {dim = 2, end = 128, start = 64} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %35 = "kiln.silu"(%33) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %36 = "kiln.mul"(%35, %34) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %38 = "kiln.linear"(%36, %37) : (tensor<?x?x64xf32, "B,T">, tensor<32x64xf32>) -> tensor<?x?x32xf32, "B,T">
    %39 = "kiln.add"(%28, %38) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %40 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %42 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.linear"(%41, %42) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%43) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "llama", max_positions = 64, vocab_size = 64}} : () -> ()
