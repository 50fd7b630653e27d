// Golden output: quantize-weights-int8-partial.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: quantize-weights-int8-partial
// pass: quantize-weights{format=int8,exclude=*.down_proj,embedding=false,lm_head=false}
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %1 = "kiln.embedding"(%0, %input_ids) : (tensor<64x32xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %2 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %3 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %4 = "kiln.rms_norm"(%1, %3) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %5 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8"} : () -> tensor<64x32xi8>
    %6 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8_scales"} : () -> tensor<64xf32>
    %7 = "kiln.qlinear"(%4, %5, %6) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<?x?x64xf32, "B,T">
    %8 = "kiln.slice"(%7) {dim = 2, end = 32, start = 0} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %9 = "kiln.slice"(%7) {dim = 2, end = 48, start = 32} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %10 = "kiln.slice"(%7) {dim = 2, end = 64, start = 48} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %11 = "kiln.reshape"(%8) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %12 = "kiln.transpose"(%11) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %13 = "kiln.reshape"(%9) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %15 = "kiln.reshape"(%10) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %17 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %18 = "kiln.rope_cos"(%17, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %19 = "kiln.slice"(%18) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %20 = "kiln.rope_sin"(%17, %2) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %21 = "kiln.slice"(%20) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %22 = "kiln.rope"(%12, %19, %21) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %23 = "kiln.rope"(%14, %19, %21) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %24 = "kiln.attention"(%22, %23, %16) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %25 = "kiln.transpose"(%24) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %26 = "kiln.reshape"(%25) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %27 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8"} : () -> tensor<32x32xi8>
    %28 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %29 = "kiln.qlinear"(%26, %27, %28) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<32x32xi8>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %30 = "kiln.add"(%1, %29) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %31 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %32 = "kiln.rms_norm"(%30, %31) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %33 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8"} : () -> tensor<128x32xi8>
    %34 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8_scales"} : () -> tensor<128xf32>
    %35 = "kiln.qlinear"(%32, %33, %34) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<128x32xi8>, tensor<128xf32>) -> tensor<?x?x128xf32, "B,T">
    %36 = "kiln.slice"(%35) {dim = 2, end = 64, start = 0} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %37 = "kiln.slice"(%35) {dim = 2, end = 128, start = 64} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %38 = "kiln.silu"(%36) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %39 = "kiln.mul"(%38, %37) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %40 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %41 = "kiln.linear"(%39, %40) : (tensor<?x?x64xf32, "B,T">, tensor<32x64xf32>) -> tensor<?x?x32xf32, "B,T">
    %42 = "kiln.add"(%30, %41) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %43 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %44 = "kiln.rms_norm"(%42, %43) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %45 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %46 = "kiln.linear"(%44, %45) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%46) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "llama", max_positions = 64, quantization = {weights = {exclude = ["*.down_proj"], format = "int8", full_precision = {lm_head = "lm_head=false", model.embed_tokens = "embedding=false", model.layers.0.mlp.down_proj = "excluded by '*.down_proj'"}, group_size = 0, quantized = ["model.layers.0.mlp.gate_up_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.qkv_proj"], symmetric = true, warnings = []}}, vocab_size = 64}} : () -> ()
