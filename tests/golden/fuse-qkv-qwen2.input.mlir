// Golden input: the IR immediately before one pass; tests/test_golden.py runs that pass on it
// and compares the result with fuse-qkv-qwen2.expected.mlir. Regenerate: python tools/golden.py --write
// case: fuse-qkv-qwen2
// pass: fuse-qkv
// model: qwen2-tiny (q/k/v bias, tied embeddings) shrunk to 1 layer, hidden 32, 4 heads / 2 KV heads (head dim 8),
//   MLP 64, vocab 64, context 64
// preceded by: canonicalize, fold-constants, cse, dce (pipeline 'default', its first 4 passes)
// weights: none in the text; the test gives each a tensor drawn from a generator seeded by its name and type
//   (tools/golden.py: golden_weight)
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %1 = "kiln.embedding"(%0, %input_ids) : (tensor<64x32xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %2 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %3 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %4 = "kiln.rms_norm"(%1, %3) {eps = 1.0e-06} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %5 = "kiln.weight"() {name = "model.layers.0.self_attn.q_proj.weight"} : () -> tensor<32x32xf32>
    %6 = "kiln.weight"() {name = "model.layers.0.self_attn.q_proj.bias"} : () -> tensor<32xf32>
    %7 = "kiln.linear"(%4, %5, %6) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %8 = "kiln.reshape"(%7) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %9 = "kiln.transpose"(%8) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %10 = "kiln.weight"() {name = "model.layers.0.self_attn.k_proj.weight"} : () -> tensor<16x32xf32>
    %11 = "kiln.weight"() {name = "model.layers.0.self_attn.k_proj.bias"} : () -> tensor<16xf32>
    %12 = "kiln.linear"(%4, %10, %11) : (tensor<?x?x32xf32, "B,T">, tensor<16x32xf32>, tensor<16xf32>) -> tensor<?x?x16xf32, "B,T">
    %13 = "kiln.reshape"(%12) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %15 = "kiln.weight"() {name = "model.layers.0.self_attn.v_proj.weight"} : () -> tensor<16x32xf32>
    %16 = "kiln.weight"() {name = "model.layers.0.self_attn.v_proj.bias"} : () -> tensor<16xf32>
    %17 = "kiln.linear"(%4, %15, %16) : (tensor<?x?x32xf32, "B,T">, tensor<16x32xf32>, tensor<16xf32>) -> tensor<?x?x16xf32, "B,T">
    %18 = "kiln.reshape"(%17) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %19 = "kiln.transpose"(%18) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %20 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %21 = "kiln.rope_cos"(%20, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %22 = "kiln.slice"(%21) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %23 = "kiln.rope_sin"(%20, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %24 = "kiln.slice"(%23) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %25 = "kiln.rope"(%9, %22, %24) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %26 = "kiln.rope"(%14, %22, %24) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %27 = "kiln.attention"(%25, %26, %19) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %28 = "kiln.transpose"(%27) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %29 = "kiln.reshape"(%28) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %30 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %31 = "kiln.linear"(%29, %30) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>) -> tensor<?x?x32xf32, "B,T">
    %32 = "kiln.add"(%1, %31) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %33 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %34 = "kiln.rms_norm"(%32, %33) {eps = 1.0e-06} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %35 = "kiln.weight"() {name = "model.layers.0.mlp.gate_proj.weight"} : () -> tensor<64x32xf32>
    %36 = "kiln.linear"(%34, %35) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    %37 = "kiln.silu"(%36) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %38 = "kiln.weight"() {name = "model.layers.0.mlp.up_proj.weight"} : () -> tensor<64x32xf32>
    %39 = "kiln.linear"(%34, %38) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    %40 = "kiln.mul"(%37, %39) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %41 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %42 = "kiln.linear"(%40, %41) : (tensor<?x?x64xf32, "B,T">, tensor<32x64xf32>) -> tensor<?x?x32xf32, "B,T">
    %43 = "kiln.add"(%32, %42) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %44 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %45 = "kiln.rms_norm"(%43, %44) {eps = 1.0e-06} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %46 = "kiln.linear"(%45, %0) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%46) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "qwen2", max_positions = 64, vocab_size = 64}} : () -> ()
