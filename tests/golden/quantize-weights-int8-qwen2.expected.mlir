// Golden output: quantize-weights-int8-qwen2.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: quantize-weights-int8-qwen2
// pass: quantize-weights{format=int8}
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "lm_head.weight.int8"} : () -> tensor<64x32xi8>
    %1 = "kiln.weight"() {name = "lm_head.weight.int8_scales"} : () -> tensor<64xf32>
    %2 = "kiln.qembedding"(%0, %1, %input_ids) {format = "int8", group_size = 0, symmetric = true} : (tensor<64x32xi8>, tensor<64xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %3 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %4 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %5 = "kiln.rms_norm"(%2, %4) {eps = 1.0e-06} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %6 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.bias"} : () -> tensor<64xf32>
    %7 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8"} : () -> tensor<64x32xi8>
    %8 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8_scales"} : () -> tensor<64xf32>
    %9 = "kiln.qlinear"(%5, %7, %8, %6) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<64x32xi8>, tensor<64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32, "B,T">
    %10 = "kiln.slice"(%9) {dim = 2, end = 32, start = 0} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %11 = "kiln.slice"(%9) {dim = 2, end = 48, start = 32} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %12 = "kiln.slice"(%9) {dim = 2, end = 64, start = 48} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %13 = "kiln.reshape"(%10) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %15 = "kiln.reshape"(%11) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %17 = "kiln.reshape"(%12) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %19 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %20 = "kiln.rope_cos"(%19, %3) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %21 = "kiln.slice"(%20) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %22 = "kiln.rope_sin"(%19, %3) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %23 = "kiln.slice"(%22) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %24 = "kiln.rope"(%14, %21, %23) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %25 = "kiln.rope"(%16, %21, %23) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %26 = "kiln.attention"(%24, %25, %18) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %27 = "kiln.transpose"(%26) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %28 = "kiln.reshape"(%27) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %29 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8"} : () -> tensor<32x32xi8>
    %30 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %31 = "kiln.qlinear"(%28, %29, %30) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<32x32xi8>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %32 = "kiln.add"(%2, %31) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %33 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %34 = "kiln.rms_norm"(%32, %33) {eps = 1.0e-06} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %35 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8"} : () -> tensor<128x32xi8>
    %36 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8_scales"} : () -> tensor<128xf32>
    %37 = "kiln.qlinear"(%34, %35, %36) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<128x32xi8>, tensor<128xf32>) -> tensor<?x?x128xf32, "B,T">
    %38 = "kiln.slice"(%37) {dim = 2, end = 64, start = 0} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %39 = "kiln.slice"(%37) {dim = 2, end = 128, start = 64} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %40 = "kiln.silu"(%38) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %41 = "kiln.mul"(%40, %39) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %42 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8"} : () -> tensor<32x64xi8>
    %43 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %44 = "kiln.qlinear"(%41, %42, %43) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x64xf32, "B,T">, tensor<32x64xi8>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %45 = "kiln.add"(%32, %44) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %46 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %47 = "kiln.rms_norm"(%45, %46) {eps = 1.0e-06} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %48 = "kiln.weight"() {name = "lm_head.weight.int8"} : () -> tensor<64x32xi8>
    %49 = "kiln.weight"() {name = "lm_head.weight.int8_scales"} : () -> tensor<64xf32>
    %50 = "kiln.qlinear"(%47, %48, %49) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%50) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "qwen2", max_positions = 64, quantization = {weights = {exclude = [], format = "int8", full_precision = {}, group_size = 0, quantized = ["lm_head", "model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_up_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.qkv_proj"], symmetric = true, warnings = []}}, vocab_size = 64}} : () -> ()
