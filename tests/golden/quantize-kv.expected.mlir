// Golden output: quantize-kv.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: quantize-kv
// pass: quantize-kv
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
    %23 = "kiln.fake_quant_int8"(%22) : (tensor<?x2x?x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %24 = "kiln.fake_quant_int8"(%15) : (tensor<?x2x?x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %25 = "kiln.attention"(%21, %23, %24) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %26 = "kiln.transpose"(%25) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %27 = "kiln.reshape"(%26) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %28 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %29 = "kiln.linear"(%27, %28) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>) -> tensor<?x?x32xf32, "B,T">
    %30 = "kiln.add"(%1, %29) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %31 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %32 = "kiln.rms_norm"(%30, %31) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %33 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %34 = "kiln.linear"(%32, %33) : (tensor<?x?x32xf32, "B,T">, tensor<128x32xf32>) -> tensor<?x?x128xf32, "B,T">
    %35 = "kiln.slice"(%34) {dim = 2, end = 64, start = 0} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %36 = "kiln.slice"(%34) {dim = 2, end = 128, start = 64} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %37 = "kiln.silu"(%35) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %38 = "kiln.mul"(%37, %36) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %39 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %40 = "kiln.linear"(%38, %39) : (tensor<?x?x64xf32, "B,T">, tensor<32x64xf32>) -> tensor<?x?x32xf32, "B,T">
    %41 = "kiln.add"(%30, %40) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %42 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %43 = "kiln.rms_norm"(%41, %42) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %44 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %45 = "kiln.linear"(%43, %44) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%45) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x2x64x8xi8, "NB">, %v_cache: tensor<1x?x2x64x8xi8, "NB">, %k_scale: tensor<1x?x2x64xf32, "NB">, %v_scale: tensor<1x?x2x64xf32, "NB">, %logits_at: tensor<?xi64, "K">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %input_ids) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %3 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %4 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %5 = "kiln.rms_norm"(%2, %4) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %6 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %7 = "kiln.linear"(%5, %6) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %8 = "kiln.slice"(%7) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %9 = "kiln.slice"(%7) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %10 = "kiln.slice"(%7) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %11 = "kiln.reshape"(%8) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %12 = "kiln.transpose"(%11) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %13 = "kiln.reshape"(%9) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %15 = "kiln.reshape"(%10) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %17 = "kiln.rope_cos"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %18 = "kiln.slice"(%17) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %19 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %20 = "kiln.slice"(%19) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %21 = "kiln.rope"(%12, %18, %20) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %22 = "kiln.rope"(%14, %18, %20) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %23:2 = "kiln.cache_write_q8"(%k_cache, %k_scale, %22, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">)
    %24:2 = "kiln.cache_write_q8"(%v_cache, %v_scale, %16, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">)
    %25 = "kiln.cache_attention_q8"(%21, %23#0, %23#1, %24#0, %24#1, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %26 = "kiln.transpose"(%25) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %27 = "kiln.reshape"(%26) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %29 = "kiln.linear"(%27, %28) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %30 = "kiln.add"(%2, %29) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %31 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %32 = "kiln.rms_norm"(%30, %31) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %33 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %34 = "kiln.linear"(%32, %33) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %35 = "kiln.slice"(%34) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %36 = "kiln.slice"(%34) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %37 = "kiln.silu"(%35) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %38 = "kiln.mul"(%37, %36) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %39 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %40 = "kiln.linear"(%38, %39) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %41 = "kiln.add"(%30, %40) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %42 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %43 = "kiln.rms_norm"(%41, %42) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %44 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %45 = "kiln.gather"(%43, %logits_at) {dim = 1} : (tensor<1x?x32xf32, "N">, tensor<?xi64, "K">) -> tensor<1x?x32xf32, "K">
    %46 = "kiln.linear"(%45, %44) : (tensor<1x?x32xf32, "K">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "K">
    "kiln.return"(%46) : (tensor<1x?x64xf32, "K">) -> ()
  }) {sym_name = "prefill"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x2x64x8xi8, "NB">, %v_cache: tensor<1x?x2x64x8xi8, "NB">, %k_scale: tensor<1x?x2x64xf32, "NB">, %v_scale: tensor<1x?x2x64xf32, "NB">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %input_ids) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %3 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %4 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %5 = "kiln.rms_norm"(%2, %4) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %6 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %7 = "kiln.linear"(%5, %6) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %8 = "kiln.slice"(%7) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %9 = "kiln.slice"(%7) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %10 = "kiln.slice"(%7) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %11 = "kiln.reshape"(%8) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %12 = "kiln.transpose"(%11) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %13 = "kiln.reshape"(%9) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %15 = "kiln.reshape"(%10) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %17 = "kiln.rope_cos"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %18 = "kiln.slice"(%17) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %19 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %20 = "kiln.slice"(%19) {dim = 0, end = 1, start = 0} : (tensor<1x?x8xf32, "N">) -> tensor<1x?x8xf32, "N">
    %21 = "kiln.rope"(%12, %18, %20) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %22 = "kiln.rope"(%14, %18, %20) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %23:2 = "kiln.cache_write_q8"(%k_cache, %k_scale, %22, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">)
    %24:2 = "kiln.cache_write_q8"(%v_cache, %v_scale, %16, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> (tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">)
    %25 = "kiln.cache_attention_q8"(%21, %23#0, %23#1, %24#0, %24#1, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<1x?x2x64x8xi8, "NB">, tensor<1x?x2x64xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %26 = "kiln.transpose"(%25) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %27 = "kiln.reshape"(%26) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %29 = "kiln.linear"(%27, %28) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %30 = "kiln.add"(%2, %29) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %31 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %32 = "kiln.rms_norm"(%30, %31) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %33 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %34 = "kiln.linear"(%32, %33) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %35 = "kiln.slice"(%34) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %36 = "kiln.slice"(%34) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %37 = "kiln.silu"(%35) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %38 = "kiln.mul"(%37, %36) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %39 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %40 = "kiln.linear"(%38, %39) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %41 = "kiln.add"(%30, %40) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %42 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %43 = "kiln.rms_norm"(%41, %42) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %44 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %45 = "kiln.linear"(%43, %44) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    "kiln.return"(%45) : (tensor<1x?x64xf32, "N">) -> ()
  }) {sym_name = "decode"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "llama", kv_cache = {block_size = 64, bytes_per_token = 48, dtype = "i8", head_dim = 8, kv_heads = 2, layers = 1, layout = "contiguous", scales = "f32 per token and kv head"}, max_positions = 64, vocab_size = 64}} : () -> ()
