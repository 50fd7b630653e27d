// Golden input: the IR immediately before one pass; tests/test_golden.py runs that pass on it
// and compares the result with canonicalize.expected.mlir. Regenerate: python tools/golden.py --write
// case: canonicalize
// pass: canonicalize
// model: llama-tiny shrunk to 1 layer, hidden 32, 4 heads / 2 KV heads (head dim 8), MLP 64, vocab 64, context 64
// preceded by: no pass: the frontend's IR, as kiln.frontend.import_model captures it (the first pass of pipeline
//   'default')
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
    %5 = "kiln.weight"() {name = "model.layers.0.self_attn.q_proj.weight"} : () -> tensor<32x32xf32>
    %6 = "kiln.linear"(%4, %5) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>) -> tensor<?x?x32xf32, "B,T">
    %7 = "kiln.reshape"(%6) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %8 = "kiln.transpose"(%7) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %9 = "kiln.weight"() {name = "model.layers.0.self_attn.k_proj.weight"} : () -> tensor<16x32xf32>
    %10 = "kiln.linear"(%4, %9) : (tensor<?x?x32xf32, "B,T">, tensor<16x32xf32>) -> tensor<?x?x16xf32, "B,T">
    %11 = "kiln.reshape"(%10) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %12 = "kiln.transpose"(%11) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %13 = "kiln.weight"() {name = "model.layers.0.self_attn.v_proj.weight"} : () -> tensor<16x32xf32>
    %14 = "kiln.linear"(%4, %13) : (tensor<?x?x32xf32, "B,T">, tensor<16x32xf32>) -> tensor<?x?x16xf32, "B,T">
    %15 = "kiln.reshape"(%14) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %17 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %18 = "kiln.rope_cos"(%17, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %19 = "kiln.slice"(%18) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %20 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %21 = "kiln.rope_sin"(%20, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %22 = "kiln.slice"(%21) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %23 = "kiln.rope"(%8, %19, %22) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %24 = "kiln.rope"(%12, %19, %22) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %25 = "kiln.attention"(%23, %24, %16) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %26 = "kiln.reshape"(%25) {shape = ["B", 4, "T", 8]} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %27 = "kiln.transpose"(%26) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %28 = "kiln.reshape"(%27) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %29 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %30 = "kiln.linear"(%28, %29) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>) -> tensor<?x?x32xf32, "B,T">
    %31 = "kiln.add"(%1, %30) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %32 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %33 = "kiln.rms_norm"(%31, %32) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %34 = "kiln.weight"() {name = "model.layers.0.mlp.gate_proj.weight"} : () -> tensor<64x32xf32>
    %35 = "kiln.linear"(%33, %34) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    %36 = "kiln.silu"(%35) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.up_proj.weight"} : () -> tensor<64x32xf32>
    %38 = "kiln.linear"(%33, %37) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    %39 = "kiln.mul"(%36, %38) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %40 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %41 = "kiln.linear"(%39, %40) : (tensor<?x?x64xf32, "B,T">, tensor<32x64xf32>) -> tensor<?x?x32xf32, "B,T">
    %42 = "kiln.add"(%31, %41) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %43 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %44 = "kiln.rms_norm"(%42, %43) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %45 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %46 = "kiln.linear"(%44, %45) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%46) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "llama", max_positions = 64, vocab_size = 64}} : () -> ()
