// Golden output: kv-cache-int8-weights.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: kv-cache-int8-weights
// pass: kv-cache
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "model.embed_tokens.weight.int8"} : () -> tensor<64x32xi8>
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight.int8_scales"} : () -> tensor<64xf32>
    %2 = "kiln.qembedding"(%0, %1, %input_ids) {format = "int8", group_size = 0, symmetric = true} : (tensor<64x32xi8>, tensor<64xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %3 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %4 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %5 = "kiln.rms_norm"(%2, %4) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %6 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8"} : () -> tensor<64x32xi8>
    %7 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8_scales"} : () -> tensor<64xf32>
    %8 = "kiln.qlinear"(%5, %6, %7) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<?x?x64xf32, "B,T">
    %9 = "kiln.slice"(%8) {dim = 2, end = 32, start = 0} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %10 = "kiln.slice"(%8) {dim = 2, end = 48, start = 32} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %11 = "kiln.slice"(%8) {dim = 2, end = 64, start = 48} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %12 = "kiln.reshape"(%9) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %13 = "kiln.transpose"(%12) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %14 = "kiln.reshape"(%10) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %15 = "kiln.transpose"(%14) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %16 = "kiln.reshape"(%11) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %17 = "kiln.transpose"(%16) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %18 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %19 = "kiln.rope_cos"(%18, %3) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %20 = "kiln.slice"(%19) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %21 = "kiln.rope_sin"(%18, %3) {scale = 1.0} : (tensor<?x?xi64, "B,T">, tensor<4xf32>) -> tensor<?x?x8xf32, "B,T">
    %22 = "kiln.slice"(%21) {dim = 0, end = 1, start = 0} : (tensor<?x?x8xf32, "B,T">) -> tensor<1x?x8xf32, "T">
    %23 = "kiln.rope"(%13, %20, %22) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %24 = "kiln.rope"(%15, %20, %22) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %25 = "kiln.attention"(%23, %24, %17) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %26 = "kiln.transpose"(%25) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %27 = "kiln.reshape"(%26) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %28 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8"} : () -> tensor<32x32xi8>
    %29 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %30 = "kiln.qlinear"(%27, %28, %29) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<32x32xi8>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %31 = "kiln.add"(%2, %30) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %32 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %33 = "kiln.rms_norm"(%31, %32) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %34 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8"} : () -> tensor<128x32xi8>
    %35 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8_scales"} : () -> tensor<128xf32>
    %36 = "kiln.qlinear"(%33, %34, %35) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<128x32xi8>, tensor<128xf32>) -> tensor<?x?x128xf32, "B,T">
    %37 = "kiln.slice"(%36) {dim = 2, end = 64, start = 0} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %38 = "kiln.slice"(%36) {dim = 2, end = 128, start = 64} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %39 = "kiln.silu"(%37) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %40 = "kiln.mul"(%39, %38) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %41 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8"} : () -> tensor<32x64xi8>
    %42 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %43 = "kiln.qlinear"(%40, %41, %42) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x64xf32, "B,T">, tensor<32x64xi8>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %44 = "kiln.add"(%31, %43) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %45 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %46 = "kiln.rms_norm"(%44, %45) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %47 = "kiln.weight"() {name = "lm_head.weight.int8"} : () -> tensor<64x32xi8>
    %48 = "kiln.weight"() {name = "lm_head.weight.int8_scales"} : () -> tensor<64xf32>
    %49 = "kiln.qlinear"(%46, %47, %48) {format = "int8", group_size = 0, symmetric = true} : (tensor<?x?x32xf32, "B,T">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%49) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x2x64x8xf32, "NB">, %v_cache: tensor<1x?x2x64x8xf32, "NB">, %logits_at: tensor<?xi64, "K">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight.int8"} : () -> tensor<64x32xi8>
    %2 = "kiln.weight"() {name = "model.embed_tokens.weight.int8_scales"} : () -> tensor<64xf32>
    %3 = "kiln.qembedding"(%1, %2, %input_ids) {format = "int8", group_size = 0, symmetric = true} : (tensor<64x32xi8>, tensor<64xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %4 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %5 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %6 = "kiln.rms_norm"(%3, %5) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %7 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8"} : () -> tensor<64x32xi8>
    %8 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8_scales"} : () -> tensor<64xf32>
    %9 = "kiln.qlinear"(%6, %7, %8) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "N">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<1x?x64xf32, "N">
    %10 = "kiln.slice"(%9) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %11 = "kiln.slice"(%9) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %12 = "kiln.slice"(%9) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %13 = "kiln.reshape"(%10) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %15 = "kiln.reshape"(%11) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %17 = "kiln.reshape"(%12) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %19 = "kiln.rope_cos"(%0, %4) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %20 = "kiln.slice"(%19) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %21 = "kiln.rope_sin"(%0, %4) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %22 = "kiln.slice"(%21) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %23 = "kiln.rope"(%14, %20, %22) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.rope"(%16, %20, %22) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %25 = "kiln.cache_write"(%k_cache, %24, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %26 = "kiln.cache_write"(%v_cache, %18, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %27 = "kiln.cache_attention"(%23, %25, %26, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x2x64x8xf32, "NB">, tensor<1x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %28 = "kiln.transpose"(%27) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %29 = "kiln.reshape"(%28) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %30 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8"} : () -> tensor<32x32xi8>
    %31 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %32 = "kiln.qlinear"(%29, %30, %31) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "N">, tensor<32x32xi8>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %33 = "kiln.add"(%3, %32) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %34 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %35 = "kiln.rms_norm"(%33, %34) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %36 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8"} : () -> tensor<128x32xi8>
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8_scales"} : () -> tensor<128xf32>
    %38 = "kiln.qlinear"(%35, %36, %37) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "N">, tensor<128x32xi8>, tensor<128xf32>) -> tensor<1x?x128xf32, "N">
    %39 = "kiln.slice"(%38) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %40 = "kiln.slice"(%38) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %41 = "kiln.silu"(%39) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %42 = "kiln.mul"(%41, %40) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %43 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8"} : () -> tensor<32x64xi8>
    %44 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %45 = "kiln.qlinear"(%42, %43, %44) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x64xf32, "N">, tensor<32x64xi8>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %46 = "kiln.add"(%33, %45) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %47 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %48 = "kiln.rms_norm"(%46, %47) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %49 = "kiln.weight"() {name = "lm_head.weight.int8"} : () -> tensor<64x32xi8>
    %50 = "kiln.weight"() {name = "lm_head.weight.int8_scales"} : () -> tensor<64xf32>
    %51 = "kiln.gather"(%48, %logits_at) {dim = 1} : (tensor<1x?x32xf32, "N">, tensor<?xi64, "K">) -> tensor<1x?x32xf32, "K">
    %52 = "kiln.qlinear"(%51, %49, %50) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "K">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<1x?x64xf32, "K">
    "kiln.return"(%52) : (tensor<1x?x64xf32, "K">) -> ()
  }) {sym_name = "prefill"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x2x64x8xf32, "NB">, %v_cache: tensor<1x?x2x64x8xf32, "NB">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight.int8"} : () -> tensor<64x32xi8>
    %2 = "kiln.weight"() {name = "model.embed_tokens.weight.int8_scales"} : () -> tensor<64xf32>
    %3 = "kiln.qembedding"(%1, %2, %input_ids) {format = "int8", group_size = 0, symmetric = true} : (tensor<64x32xi8>, tensor<64xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %4 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %5 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %6 = "kiln.rms_norm"(%3, %5) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %7 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8"} : () -> tensor<64x32xi8>
    %8 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight.int8_scales"} : () -> tensor<64xf32>
    %9 = "kiln.qlinear"(%6, %7, %8) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "N">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<1x?x64xf32, "N">
    %10 = "kiln.slice"(%9) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %11 = "kiln.slice"(%9) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %12 = "kiln.slice"(%9) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %13 = "kiln.reshape"(%10) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %15 = "kiln.reshape"(%11) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %17 = "kiln.reshape"(%12) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %19 = "kiln.rope_cos"(%0, %4) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %20 = "kiln.slice"(%19) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %21 = "kiln.rope_sin"(%0, %4) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %22 = "kiln.slice"(%21) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %23 = "kiln.rope"(%14, %20, %22) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.rope"(%16, %20, %22) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %25 = "kiln.cache_write"(%k_cache, %24, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %26 = "kiln.cache_write"(%v_cache, %18, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %27 = "kiln.cache_attention"(%23, %25, %26, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x2x64x8xf32, "NB">, tensor<1x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %28 = "kiln.transpose"(%27) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %29 = "kiln.reshape"(%28) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %30 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8"} : () -> tensor<32x32xi8>
    %31 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %32 = "kiln.qlinear"(%29, %30, %31) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "N">, tensor<32x32xi8>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %33 = "kiln.add"(%3, %32) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %34 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %35 = "kiln.rms_norm"(%33, %34) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %36 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8"} : () -> tensor<128x32xi8>
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight.int8_scales"} : () -> tensor<128xf32>
    %38 = "kiln.qlinear"(%35, %36, %37) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "N">, tensor<128x32xi8>, tensor<128xf32>) -> tensor<1x?x128xf32, "N">
    %39 = "kiln.slice"(%38) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %40 = "kiln.slice"(%38) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %41 = "kiln.silu"(%39) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %42 = "kiln.mul"(%41, %40) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %43 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8"} : () -> tensor<32x64xi8>
    %44 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight.int8_scales"} : () -> tensor<32xf32>
    %45 = "kiln.qlinear"(%42, %43, %44) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x64xf32, "N">, tensor<32x64xi8>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %46 = "kiln.add"(%33, %45) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %47 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %48 = "kiln.rms_norm"(%46, %47) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %49 = "kiln.weight"() {name = "lm_head.weight.int8"} : () -> tensor<64x32xi8>
    %50 = "kiln.weight"() {name = "lm_head.weight.int8_scales"} : () -> tensor<64xf32>
    %51 = "kiln.qlinear"(%48, %49, %50) {format = "int8", group_size = 0, symmetric = true} : (tensor<1x?x32xf32, "N">, tensor<64x32xi8>, tensor<64xf32>) -> tensor<1x?x64xf32, "N">
    "kiln.return"(%51) : (tensor<1x?x64xf32, "N">) -> ()
  }) {sym_name = "decode"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "llama", kv_cache = {block_size = 64, bytes_per_token = 128, dtype = "f32", head_dim = 8, kv_heads = 2, layers = 1, layout = "contiguous"}, max_positions = 64, quantization = {weights = {exclude = [], format = "int8", full_precision = {}, group_size = 0, quantized = ["lm_head", "model.embed_tokens", "model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_up_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.qkv_proj"], symmetric = true, warnings = []}}, vocab_size = 64}} : () -> ()
