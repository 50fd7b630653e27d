// Golden output: quantize-weights-int4-asymmetric.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: quantize-weights-int4-asymmetric
// pass: quantize-weights{format=int4,group_size=32,symmetric=false}
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "model.embed_tokens.weight.int4"} : () -> tensor<64x16xui8>
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight.int4_scales"} : () -> tensor<64x1xf16>
    %2 = "kiln.weight"() {name = "model.embed_tokens.weight.int4_offsets"} : () -> tensor<64x1xf16>
    %3 = "kiln.qembedding"(%0, %1, %2, %input_ids) {format = "int4", group_size = 32, symmetric = false} : (tensor<64x16xui8>, tensor<64x1xf16>, tensor<64x1xf16>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %4 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %5 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %6 = "kiln.rms_norm"(%3, %5) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %7 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int4"} : () -> tensor<64x16xui8>
    %8 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int4_scales"} : () -> tensor<64x1xf16>
    %9 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int4_offsets"} : () -> tensor<64x1xf16>
    %10 = "kiln.qlinear"(%6, %7, %8, %9) {format = "int4", group_size = 32, symmetric = false} : (tensor<?x?x32xf32, "B,T">, tensor<64x16xui8>, tensor<64x1xf16>, tensor<64x1xf16>) -> tensor<?x?x64xf32, "B,T">
    %11 = "kiln.slice"(%10) {dim = 2, end = 32, start = 0} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %12 = "kiln.slice"(%10) {dim = 2, end = 48, start = 32} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %13 = "kiln.slice"(%10) {dim = 2, end = 64, start = 48} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %14 = "kiln.reshape"(%11) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %15 = "kiln.transpose"(%14) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %16 = "kiln.reshape"(%12) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %17 = "kiln.transpose"(%16) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %18 = "kiln.reshape"(%13) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %19 = "kiln.transpose"(%18) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %20 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %21 = "kiln.rope_cos"(%20, %4) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %22 = "kiln.slice"(%21) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %23 = "kiln.rope_sin"(%20, %4) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %24 = "kiln.slice"(%23) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %25 = "kiln.rope"(%15, %22, %24) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %26 = "kiln.rope"(%17, %22, %24) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %27 = "kiln.attention"(%25, %26, %19) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %28 = "kiln.transpose"(%27) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %29 = "kiln.reshape"(%28) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %30 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int4"} : () -> tensor<32x16xui8>
    %31 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int4_scales"} : () -> tensor<32x1xf16>
    %32 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int4_offsets"} : () -> tensor<32x1xf16>
    %33 = "kiln.qlinear"(%29, %30, %31, %32) {format = "int4", group_size = 32, symmetric = false} : (tensor<?x?x32xf32, "B,T">, tensor<32x16xui8>, tensor<32x1xf16>, tensor<32x1xf16>) -> tensor<?x?x32xf32, "B,T">
    %34 = "kiln.add"(%3, %33) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %35 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %36 = "kiln.rms_norm"(%34, %35) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int4"} : () -> tensor<128x16xui8>
    %38 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int4_scales"} : () -> tensor<128x1xf16>
    %39 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int4_offsets"} : () -> tensor<128x1xf16>
    %40 = "kiln.qlinear"(%36, %37, %38, %39) {format = "int4", group_size = 32, symmetric = false} : (tensor<?x?x32xf32, "B,T">, tensor<128x16xui8>, tensor<128x1xf16>, tensor<128x1xf16>) -> tensor<?x?x128xf32, "B,T">
    %41 = "kiln.slice"(%40) {dim = 2, end = 64, start = 0} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %42 = "kiln.slice"(%40) {dim = 2, end = 128, start = 64} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %43 = "kiln.silu"(%41) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %44 = "kiln.mul"(%43, %42) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %45 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int4"} : () -> tensor<32x32xui8>
    %46 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int4_scales"} : () -> tensor<32x2xf16>
    %47 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int4_offsets"} : () -> tensor<32x2xf16>
    %48 = "kiln.qlinear"(%44, %45, %46, %47) {format = "int4", group_size = 32, symmetric = false} : (tensor<?x?x64xf32, "B,T">, tensor<32x32xui8>, tensor<32x2xf16>, tensor<32x2xf16>) -> tensor<?x?x32xf32, "B,T">
    %49 = "kiln.add"(%34, %48) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %50 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %51 = "kiln.rms_norm"(%49, %50) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %52 = "kiln.weight"() {name = "lm_head.weight.int4"} : () -> tensor<64x16xui8>
    %53 = "kiln.weight"() {name = "lm_head.weight.int4_scales"} : () -> tensor<64x1xf16>
    %54 = "kiln.weight"() {name = "lm_head.weight.int4_offsets"} : () -> tensor<64x1xf16>
    %55 = "kiln.qlinear"(%51, %52, %53, %54) {format = "int4", group_size = 32, symmetric = false} : (tensor<?x?x32xf32, "B,T">, tensor<64x16xui8>, tensor<64x1xf16>, tensor<64x1xf16>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%55) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "llama", max_positions = 64, quantization = {weights = {exclude = [], format = "int4", full_precision = {}, group_size = 32, quantized = ["lm_head", "model.embed_tokens", "model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_up_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.qkv_proj"], symmetric = false, warnings = []}}, vocab_size = 64}} : () -> ()
