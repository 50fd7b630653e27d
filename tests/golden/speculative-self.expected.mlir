// Golden output: speculative-self.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: speculative-self
// pass: speculative{drafter=self,k=2,skip=1}
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
    %40 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %42 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.linear"(%41, %42) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    %44 = "kiln.slice"(%43) {dim = 2, end = 32, start = 0} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %45 = "kiln.slice"(%43) {dim = 2, end = 48, start = 32} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %46 = "kiln.slice"(%43) {dim = 2, end = 64, start = 48} : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x16xf32, "B,T">
    %47 = "kiln.reshape"(%44) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %48 = "kiln.transpose"(%47) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %49 = "kiln.reshape"(%45) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %50 = "kiln.transpose"(%49) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %51 = "kiln.reshape"(%46) {shape = ["B", "T", 2, 8]} : (tensor<?x?x16xf32, "B,T">) -> tensor<?x?x2x8xf32, "B,T">
    %52 = "kiln.transpose"(%51) {dim0 = 1, dim1 = 2} : (tensor<?x?x2x8xf32, "B,T">) -> tensor<?x2x?x8xf32, "B,T">
    %53 = "kiln.rope"(%48, %18, %20) : (tensor<?x4x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x4x?x8xf32, "B,T">
    %54 = "kiln.rope"(%50, %18, %20) : (tensor<?x2x?x8xf32, "B,T">, tensor<1x?x8xf32, "T">, tensor<1x?x8xf32, "T">) -> tensor<?x2x?x8xf32, "B,T">
    %55 = "kiln.attention"(%53, %54, %52) {causal = true, scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">, tensor<?x2x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %56 = "kiln.transpose"(%55) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %57 = "kiln.reshape"(%56) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %58 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %59 = "kiln.linear"(%57, %58) : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>) -> tensor<?x?x32xf32, "B,T">
    %60 = "kiln.add"(%39, %59) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %61 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %62 = "kiln.rms_norm"(%60, %61) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %63 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %64 = "kiln.linear"(%62, %63) : (tensor<?x?x32xf32, "B,T">, tensor<128x32xf32>) -> tensor<?x?x128xf32, "B,T">
    %65 = "kiln.slice"(%64) {dim = 2, end = 64, start = 0} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %66 = "kiln.slice"(%64) {dim = 2, end = 128, start = 64} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %67 = "kiln.silu"(%65) : (tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %68 = "kiln.mul"(%67, %66) : (tensor<?x?x64xf32, "B,T">, tensor<?x?x64xf32, "B,T">) -> tensor<?x?x64xf32, "B,T">
    %69 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %70 = "kiln.linear"(%68, %69) : (tensor<?x?x64xf32, "B,T">, tensor<32x64xf32>) -> tensor<?x?x32xf32, "B,T">
    %71 = "kiln.add"(%60, %70) : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %72 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %73 = "kiln.rms_norm"(%71, %72) {eps = 1.0e-05} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %74 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %75 = "kiln.linear"(%73, %74) : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%75) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<2x?x2x64x8xf32, "NB">, %v_cache: tensor<2x?x2x64x8xf32, "NB">, %logits_at: tensor<?xi64, "K">):
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
    %18 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %19 = "kiln.rope"(%12, %17, %18) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %20 = "kiln.rope"(%14, %17, %18) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %21 = "kiln.cache_write"(%k_cache, %20, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %22 = "kiln.cache_write"(%v_cache, %16, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %23 = "kiln.cache_attention"(%19, %21, %22, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %25 = "kiln.reshape"(%24) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %26 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.linear"(%25, %26) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.add"(%2, %27) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %29 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %30 = "kiln.rms_norm"(%28, %29) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %31 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %32 = "kiln.linear"(%30, %31) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %33 = "kiln.slice"(%32) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %34 = "kiln.slice"(%32) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %35 = "kiln.silu"(%33) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %36 = "kiln.mul"(%35, %34) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %38 = "kiln.linear"(%36, %37) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %39 = "kiln.add"(%28, %38) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %40 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %42 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.linear"(%41, %42) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %44 = "kiln.slice"(%43) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %45 = "kiln.slice"(%43) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %46 = "kiln.slice"(%43) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %47 = "kiln.reshape"(%44) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %48 = "kiln.transpose"(%47) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %49 = "kiln.reshape"(%45) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %50 = "kiln.transpose"(%49) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %51 = "kiln.reshape"(%46) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %52 = "kiln.transpose"(%51) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %53 = "kiln.rope"(%48, %17, %18) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %54 = "kiln.rope"(%50, %17, %18) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %55 = "kiln.cache_write"(%21, %54, %pos, %seq, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %56 = "kiln.cache_write"(%22, %52, %pos, %seq, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %57 = "kiln.cache_attention"(%53, %55, %56, %pos, %seq, %block_table) {layer = 1, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %58 = "kiln.transpose"(%57) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %59 = "kiln.reshape"(%58) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %60 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %61 = "kiln.linear"(%59, %60) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %62 = "kiln.add"(%39, %61) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %63 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %64 = "kiln.rms_norm"(%62, %63) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %65 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %66 = "kiln.linear"(%64, %65) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %67 = "kiln.slice"(%66) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %68 = "kiln.slice"(%66) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %69 = "kiln.silu"(%67) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %70 = "kiln.mul"(%69, %68) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %71 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %72 = "kiln.linear"(%70, %71) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %73 = "kiln.add"(%62, %72) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %74 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %75 = "kiln.rms_norm"(%73, %74) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %76 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %77 = "kiln.gather"(%75, %logits_at) {dim = 1} : (tensor<1x?x32xf32, "N">, tensor<?xi64, "K">) -> tensor<1x?x32xf32, "K">
    %78 = "kiln.linear"(%77, %76) : (tensor<1x?x32xf32, "K">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "K">
    "kiln.return"(%78) : (tensor<1x?x64xf32, "K">) -> ()
  }) {sym_name = "prefill"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<2x?x2x64x8xf32, "NB">, %v_cache: tensor<2x?x2x64x8xf32, "NB">):
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
    %18 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %19 = "kiln.rope"(%12, %17, %18) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %20 = "kiln.rope"(%14, %17, %18) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %21 = "kiln.cache_write"(%k_cache, %20, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %22 = "kiln.cache_write"(%v_cache, %16, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %23 = "kiln.cache_attention"(%19, %21, %22, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %25 = "kiln.reshape"(%24) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %26 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.linear"(%25, %26) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.add"(%2, %27) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %29 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %30 = "kiln.rms_norm"(%28, %29) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %31 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %32 = "kiln.linear"(%30, %31) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %33 = "kiln.slice"(%32) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %34 = "kiln.slice"(%32) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %35 = "kiln.silu"(%33) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %36 = "kiln.mul"(%35, %34) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %38 = "kiln.linear"(%36, %37) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %39 = "kiln.add"(%28, %38) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %40 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %42 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.linear"(%41, %42) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %44 = "kiln.slice"(%43) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %45 = "kiln.slice"(%43) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %46 = "kiln.slice"(%43) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %47 = "kiln.reshape"(%44) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %48 = "kiln.transpose"(%47) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %49 = "kiln.reshape"(%45) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %50 = "kiln.transpose"(%49) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %51 = "kiln.reshape"(%46) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %52 = "kiln.transpose"(%51) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %53 = "kiln.rope"(%48, %17, %18) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %54 = "kiln.rope"(%50, %17, %18) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %55 = "kiln.cache_write"(%21, %54, %pos, %seq, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %56 = "kiln.cache_write"(%22, %52, %pos, %seq, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %57 = "kiln.cache_attention"(%53, %55, %56, %pos, %seq, %block_table) {layer = 1, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %58 = "kiln.transpose"(%57) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %59 = "kiln.reshape"(%58) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %60 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %61 = "kiln.linear"(%59, %60) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %62 = "kiln.add"(%39, %61) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %63 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %64 = "kiln.rms_norm"(%62, %63) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %65 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %66 = "kiln.linear"(%64, %65) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %67 = "kiln.slice"(%66) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %68 = "kiln.slice"(%66) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %69 = "kiln.silu"(%67) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %70 = "kiln.mul"(%69, %68) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %71 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %72 = "kiln.linear"(%70, %71) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %73 = "kiln.add"(%62, %72) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %74 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %75 = "kiln.rms_norm"(%73, %74) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %76 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %77 = "kiln.linear"(%75, %76) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    "kiln.return"(%77) : (tensor<1x?x64xf32, "N">) -> ()
  }) {sym_name = "decode"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<2x?x2x64x8xf32, "NB">, %v_cache: tensor<2x?x2x64x8xf32, "NB">, %slot: tensor<?xi64, "N">, %tree_mask: tensor<?x?xi1, "N,N">, %parent: tensor<?xi64, "N">, %draft_q: tensor<?x?xf32, "N,Q">, %sampling: tensor<3xf32>, %seed: tensor<1xi64>):
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
    %18 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %19 = "kiln.rope"(%12, %17, %18) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %20 = "kiln.rope"(%14, %17, %18) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %21 = "kiln.cache_write"(%k_cache, %20, %slot, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %22 = "kiln.cache_write"(%v_cache, %16, %slot, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %23 = "kiln.cache_tree_attention"(%19, %21, %22, %slot, %seq, %block_table, %tree_mask) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">, tensor<?x?xi1, "N,N">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %25 = "kiln.reshape"(%24) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %26 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.linear"(%25, %26) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.add"(%2, %27) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %29 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %30 = "kiln.rms_norm"(%28, %29) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %31 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %32 = "kiln.linear"(%30, %31) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %33 = "kiln.slice"(%32) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %34 = "kiln.slice"(%32) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %35 = "kiln.silu"(%33) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %36 = "kiln.mul"(%35, %34) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %37 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %38 = "kiln.linear"(%36, %37) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %39 = "kiln.add"(%28, %38) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %40 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %42 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.linear"(%41, %42) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %44 = "kiln.slice"(%43) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %45 = "kiln.slice"(%43) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %46 = "kiln.slice"(%43) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %47 = "kiln.reshape"(%44) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %48 = "kiln.transpose"(%47) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %49 = "kiln.reshape"(%45) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %50 = "kiln.transpose"(%49) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %51 = "kiln.reshape"(%46) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %52 = "kiln.transpose"(%51) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %53 = "kiln.rope"(%48, %17, %18) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %54 = "kiln.rope"(%50, %17, %18) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %55 = "kiln.cache_write"(%21, %54, %slot, %seq, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %56 = "kiln.cache_write"(%22, %52, %slot, %seq, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %57 = "kiln.cache_tree_attention"(%53, %55, %56, %slot, %seq, %block_table, %tree_mask) {layer = 1, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">, tensor<?x?xi1, "N,N">) -> tensor<1x4x?x8xf32, "N">
    %58 = "kiln.transpose"(%57) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %59 = "kiln.reshape"(%58) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %60 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %61 = "kiln.linear"(%59, %60) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %62 = "kiln.add"(%39, %61) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %63 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %64 = "kiln.rms_norm"(%62, %63) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %65 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %66 = "kiln.linear"(%64, %65) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %67 = "kiln.slice"(%66) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %68 = "kiln.slice"(%66) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %69 = "kiln.silu"(%67) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %70 = "kiln.mul"(%69, %68) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %71 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %72 = "kiln.linear"(%70, %71) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %73 = "kiln.add"(%62, %72) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %74 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %75 = "kiln.rms_norm"(%73, %74) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %76 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %77 = "kiln.linear"(%75, %76) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %78:2 = "kiln.tree_accept"(%77, %input_ids, %parent, %seq, %draft_q, %sampling, %seed) : (tensor<1x?x64xf32, "N">, tensor<1x?xi64, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xf32, "N,Q">, tensor<3xf32>, tensor<1xi64>) -> (tensor<?xi64, "N">, tensor<?xi64, "N">)
    %79 = "kiln.cache_commit"(%55, %78#0, %slot, %pos, %seq, %block_table) : (tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %80 = "kiln.cache_commit"(%56, %78#0, %slot, %pos, %seq, %block_table) : (tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    "kiln.return"(%78#0, %78#1, %77) : (tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<1x?x64xf32, "N">) -> ()
  }) {sym_name = "verify"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x2x64x8xf32, "NB">, %v_cache: tensor<1x?x2x64x8xf32, "NB">, %logits_at: tensor<?xi64, "K">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %input_ids) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %3 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %4 = "kiln.rope_cos"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %5 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %6 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %7 = "kiln.rms_norm"(%2, %6) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %8 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %9 = "kiln.linear"(%7, %8) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %10 = "kiln.slice"(%9) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %11 = "kiln.slice"(%9) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %12 = "kiln.slice"(%9) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %13 = "kiln.reshape"(%10) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %15 = "kiln.reshape"(%11) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %17 = "kiln.reshape"(%12) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %19 = "kiln.rope"(%14, %4, %5) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %20 = "kiln.rope"(%16, %4, %5) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %21 = "kiln.cache_write"(%k_cache, %20, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %22 = "kiln.cache_write"(%v_cache, %18, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %23 = "kiln.cache_attention"(%19, %21, %22, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x2x64x8xf32, "NB">, tensor<1x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %25 = "kiln.reshape"(%24) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %26 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.linear"(%25, %26) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.add"(%2, %27) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %29 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %30 = "kiln.rms_norm"(%28, %29) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %31 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %32 = "kiln.linear"(%30, %31) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %33 = "kiln.slice"(%32) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %34 = "kiln.slice"(%32) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %35 = "kiln.silu"(%33) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %36 = "kiln.mul"(%35, %34) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %37 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %38 = "kiln.linear"(%36, %37) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %39 = "kiln.add"(%28, %38) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %40 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %42 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.gather"(%41, %logits_at) {dim = 1} : (tensor<1x?x32xf32, "N">, tensor<?xi64, "K">) -> tensor<1x?x32xf32, "K">
    %44 = "kiln.linear"(%43, %42) : (tensor<1x?x32xf32, "K">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "K">
    "kiln.return"(%44) : (tensor<1x?x64xf32, "K">) -> ()
  }) {sym_name = "draft_prefill"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x2x64x8xf32, "NB">, %v_cache: tensor<1x?x2x64x8xf32, "NB">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %input_ids) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %3 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %4 = "kiln.rope_cos"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %5 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "N">, tensor<4xf32>) -> tensor<1x?x8xf32, "N">
    %6 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %7 = "kiln.rms_norm"(%2, %6) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %8 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %9 = "kiln.linear"(%7, %8) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    %10 = "kiln.slice"(%9) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x32xf32, "N">
    %11 = "kiln.slice"(%9) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %12 = "kiln.slice"(%9) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "N">) -> tensor<1x?x16xf32, "N">
    %13 = "kiln.reshape"(%10) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %15 = "kiln.reshape"(%11) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %17 = "kiln.reshape"(%12) {shape = [1, "N", 2, 8]} : (tensor<1x?x16xf32, "N">) -> tensor<1x?x2x8xf32, "N">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %19 = "kiln.rope"(%14, %4, %5) : (tensor<1x4x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %20 = "kiln.rope"(%16, %4, %5) : (tensor<1x2x?x8xf32, "N">, tensor<1x?x8xf32, "N">, tensor<1x?x8xf32, "N">) -> tensor<1x2x?x8xf32, "N">
    %21 = "kiln.cache_write"(%k_cache, %20, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %22 = "kiln.cache_write"(%v_cache, %18, %pos, %seq, %block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x2x64x8xf32, "NB">
    %23 = "kiln.cache_attention"(%19, %21, %22, %pos, %seq, %block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x2x64x8xf32, "NB">, tensor<1x?x2x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %25 = "kiln.reshape"(%24) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %26 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.linear"(%25, %26) : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.add"(%2, %27) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %29 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %30 = "kiln.rms_norm"(%28, %29) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %31 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %32 = "kiln.linear"(%30, %31) : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "N">
    %33 = "kiln.slice"(%32) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %34 = "kiln.slice"(%32) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x64xf32, "N">
    %35 = "kiln.silu"(%33) : (tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %36 = "kiln.mul"(%35, %34) : (tensor<1x?x64xf32, "N">, tensor<1x?x64xf32, "N">) -> tensor<1x?x64xf32, "N">
    %37 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %38 = "kiln.linear"(%36, %37) : (tensor<1x?x64xf32, "N">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "N">
    %39 = "kiln.add"(%28, %38) : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %40 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<1x?x32xf32, "N">, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %42 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.linear"(%41, %42) : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    "kiln.return"(%43) : (tensor<1x?x64xf32, "N">) -> ()
  }) {sym_name = "draft_decode"} : () -> ()
  "kiln.program"() ({
  ^bb0(%catch_input_ids: tensor<1x?xi64, "C">, %catch_pos: tensor<?xi64, "C">, %catch_seq: tensor<?xi64, "C">, %draft_block_table: tensor<?x?xi64, "DS,DMB">, %draft_k_cache: tensor<1x?x2x64x8xf32, "DNB">, %draft_v_cache: tensor<1x?x2x64x8xf32, "DNB">, %catch_logits_at: tensor<?xi64, "B">, %roots: tensor<?xi64, "B">, %root_pos: tensor<?xi64, "B">, %seqs: tensor<?xi64, "B">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<2x?x2x64x8xf32, "NB">, %v_cache: tensor<2x?x2x64x8xf32, "NB">, %sampling: tensor<3xf32>, %seed: tensor<1xi64>):
    %0 = "kiln.reshape"(%catch_pos) {shape = [1, "C"]} : (tensor<?xi64, "C">) -> tensor<1x?xi64, "C">
    %1 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %catch_input_ids) : (tensor<64x32xf32>, tensor<1x?xi64, "C">) -> tensor<1x?x32xf32, "C">
    %3 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %4 = "kiln.rope_cos"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "C">, tensor<4xf32>) -> tensor<1x?x8xf32, "C">
    %5 = "kiln.rope_sin"(%0, %3) {scale = 1.0} : (tensor<1x?xi64, "C">, tensor<4xf32>) -> tensor<1x?x8xf32, "C">
    %6 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %7 = "kiln.rms_norm"(%2, %6) {eps = 1.0e-05} : (tensor<1x?x32xf32, "C">, tensor<32xf32>) -> tensor<1x?x32xf32, "C">
    %8 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %9 = "kiln.linear"(%7, %8) : (tensor<1x?x32xf32, "C">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "C">
    %10 = "kiln.slice"(%9) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "C">) -> tensor<1x?x32xf32, "C">
    %11 = "kiln.slice"(%9) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "C">) -> tensor<1x?x16xf32, "C">
    %12 = "kiln.slice"(%9) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "C">) -> tensor<1x?x16xf32, "C">
    %13 = "kiln.reshape"(%10) {shape = [1, "C", 4, 8]} : (tensor<1x?x32xf32, "C">) -> tensor<1x?x4x8xf32, "C">
    %14 = "kiln.transpose"(%13) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "C">) -> tensor<1x4x?x8xf32, "C">
    %15 = "kiln.reshape"(%11) {shape = [1, "C", 2, 8]} : (tensor<1x?x16xf32, "C">) -> tensor<1x?x2x8xf32, "C">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "C">) -> tensor<1x2x?x8xf32, "C">
    %17 = "kiln.reshape"(%12) {shape = [1, "C", 2, 8]} : (tensor<1x?x16xf32, "C">) -> tensor<1x?x2x8xf32, "C">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "C">) -> tensor<1x2x?x8xf32, "C">
    %19 = "kiln.rope"(%14, %4, %5) : (tensor<1x4x?x8xf32, "C">, tensor<1x?x8xf32, "C">, tensor<1x?x8xf32, "C">) -> tensor<1x4x?x8xf32, "C">
    %20 = "kiln.rope"(%16, %4, %5) : (tensor<1x2x?x8xf32, "C">, tensor<1x?x8xf32, "C">, tensor<1x?x8xf32, "C">) -> tensor<1x2x?x8xf32, "C">
    %21 = "kiln.cache_write"(%draft_k_cache, %20, %catch_pos, %catch_seq, %draft_block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "DNB">, tensor<1x2x?x8xf32, "C">, tensor<?xi64, "C">, tensor<?xi64, "C">, tensor<?x?xi64, "DS,DMB">) -> tensor<1x?x2x64x8xf32, "DNB">
    %22 = "kiln.cache_write"(%draft_v_cache, %18, %catch_pos, %catch_seq, %draft_block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "DNB">, tensor<1x2x?x8xf32, "C">, tensor<?xi64, "C">, tensor<?xi64, "C">, tensor<?x?xi64, "DS,DMB">) -> tensor<1x?x2x64x8xf32, "DNB">
    %23 = "kiln.cache_attention"(%19, %21, %22, %catch_pos, %catch_seq, %draft_block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "C">, tensor<1x?x2x64x8xf32, "DNB">, tensor<1x?x2x64x8xf32, "DNB">, tensor<?xi64, "C">, tensor<?xi64, "C">, tensor<?x?xi64, "DS,DMB">) -> tensor<1x4x?x8xf32, "C">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "C">) -> tensor<1x?x4x8xf32, "C">
    %25 = "kiln.reshape"(%24) {shape = [1, "C", 32]} : (tensor<1x?x4x8xf32, "C">) -> tensor<1x?x32xf32, "C">
    %26 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %27 = "kiln.linear"(%25, %26) : (tensor<1x?x32xf32, "C">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "C">
    %28 = "kiln.add"(%2, %27) : (tensor<1x?x32xf32, "C">, tensor<1x?x32xf32, "C">) -> tensor<1x?x32xf32, "C">
    %29 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %30 = "kiln.rms_norm"(%28, %29) {eps = 1.0e-05} : (tensor<1x?x32xf32, "C">, tensor<32xf32>) -> tensor<1x?x32xf32, "C">
    %31 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %32 = "kiln.linear"(%30, %31) : (tensor<1x?x32xf32, "C">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "C">
    %33 = "kiln.slice"(%32) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "C">) -> tensor<1x?x64xf32, "C">
    %34 = "kiln.slice"(%32) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "C">) -> tensor<1x?x64xf32, "C">
    %35 = "kiln.silu"(%33) : (tensor<1x?x64xf32, "C">) -> tensor<1x?x64xf32, "C">
    %36 = "kiln.mul"(%35, %34) : (tensor<1x?x64xf32, "C">, tensor<1x?x64xf32, "C">) -> tensor<1x?x64xf32, "C">
    %37 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %38 = "kiln.linear"(%36, %37) : (tensor<1x?x64xf32, "C">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "C">
    %39 = "kiln.add"(%28, %38) : (tensor<1x?x32xf32, "C">, tensor<1x?x32xf32, "C">) -> tensor<1x?x32xf32, "C">
    %40 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %41 = "kiln.rms_norm"(%39, %40) {eps = 1.0e-05} : (tensor<1x?x32xf32, "C">, tensor<32xf32>) -> tensor<1x?x32xf32, "C">
    %42 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %43 = "kiln.gather"(%41, %catch_logits_at) {dim = 1} : (tensor<1x?x32xf32, "C">, tensor<?xi64, "B">) -> tensor<1x?x32xf32, "B">
    %44 = "kiln.linear"(%43, %42) : (tensor<1x?x32xf32, "B">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "B">
    %45:2 = "kiln.draft_pick"(%44, %sampling, %seed) {step = 1} : (tensor<1x?x64xf32, "B">, tensor<3xf32>, tensor<1xi64>) -> (tensor<?xi64, "B">, tensor<?x64xf32, "B">)
    %46 = "kiln.reshape"(%45#0) {shape = [1, "B"]} : (tensor<?xi64, "B">) -> tensor<1x?xi64, "B">
    %47 = "kiln.add"(%root_pos) {scalar = 1} : (tensor<?xi64, "B">) -> tensor<?xi64, "B">
    %48 = "kiln.reshape"(%47) {shape = [1, "B"]} : (tensor<?xi64, "B">) -> tensor<1x?xi64, "B">
    %49 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %50 = "kiln.embedding"(%49, %46) : (tensor<64x32xf32>, tensor<1x?xi64, "B">) -> tensor<1x?x32xf32, "B">
    %51 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %52 = "kiln.rope_cos"(%48, %51) {scale = 1.0} : (tensor<1x?xi64, "B">, tensor<4xf32>) -> tensor<1x?x8xf32, "B">
    %53 = "kiln.rope_sin"(%48, %51) {scale = 1.0} : (tensor<1x?xi64, "B">, tensor<4xf32>) -> tensor<1x?x8xf32, "B">
    %54 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %55 = "kiln.rms_norm"(%50, %54) {eps = 1.0e-05} : (tensor<1x?x32xf32, "B">, tensor<32xf32>) -> tensor<1x?x32xf32, "B">
    %56 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %57 = "kiln.linear"(%55, %56) : (tensor<1x?x32xf32, "B">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "B">
    %58 = "kiln.slice"(%57) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "B">) -> tensor<1x?x32xf32, "B">
    %59 = "kiln.slice"(%57) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "B">) -> tensor<1x?x16xf32, "B">
    %60 = "kiln.slice"(%57) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "B">) -> tensor<1x?x16xf32, "B">
    %61 = "kiln.reshape"(%58) {shape = [1, "B", 4, 8]} : (tensor<1x?x32xf32, "B">) -> tensor<1x?x4x8xf32, "B">
    %62 = "kiln.transpose"(%61) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "B">) -> tensor<1x4x?x8xf32, "B">
    %63 = "kiln.reshape"(%59) {shape = [1, "B", 2, 8]} : (tensor<1x?x16xf32, "B">) -> tensor<1x?x2x8xf32, "B">
    %64 = "kiln.transpose"(%63) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "B">) -> tensor<1x2x?x8xf32, "B">
    %65 = "kiln.reshape"(%60) {shape = [1, "B", 2, 8]} : (tensor<1x?x16xf32, "B">) -> tensor<1x?x2x8xf32, "B">
    %66 = "kiln.transpose"(%65) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "B">) -> tensor<1x2x?x8xf32, "B">
    %67 = "kiln.rope"(%62, %52, %53) : (tensor<1x4x?x8xf32, "B">, tensor<1x?x8xf32, "B">, tensor<1x?x8xf32, "B">) -> tensor<1x4x?x8xf32, "B">
    %68 = "kiln.rope"(%64, %52, %53) : (tensor<1x2x?x8xf32, "B">, tensor<1x?x8xf32, "B">, tensor<1x?x8xf32, "B">) -> tensor<1x2x?x8xf32, "B">
    %69 = "kiln.cache_write"(%21, %68, %47, %seqs, %draft_block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "DNB">, tensor<1x2x?x8xf32, "B">, tensor<?xi64, "B">, tensor<?xi64, "B">, tensor<?x?xi64, "DS,DMB">) -> tensor<1x?x2x64x8xf32, "DNB">
    %70 = "kiln.cache_write"(%22, %66, %47, %seqs, %draft_block_table) {layer = 0, layout = "contiguous"} : (tensor<1x?x2x64x8xf32, "DNB">, tensor<1x2x?x8xf32, "B">, tensor<?xi64, "B">, tensor<?xi64, "B">, tensor<?x?xi64, "DS,DMB">) -> tensor<1x?x2x64x8xf32, "DNB">
    %71 = "kiln.cache_attention"(%67, %69, %70, %47, %seqs, %draft_block_table) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "B">, tensor<1x?x2x64x8xf32, "DNB">, tensor<1x?x2x64x8xf32, "DNB">, tensor<?xi64, "B">, tensor<?xi64, "B">, tensor<?x?xi64, "DS,DMB">) -> tensor<1x4x?x8xf32, "B">
    %72 = "kiln.transpose"(%71) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "B">) -> tensor<1x?x4x8xf32, "B">
    %73 = "kiln.reshape"(%72) {shape = [1, "B", 32]} : (tensor<1x?x4x8xf32, "B">) -> tensor<1x?x32xf32, "B">
    %74 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %75 = "kiln.linear"(%73, %74) : (tensor<1x?x32xf32, "B">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "B">
    %76 = "kiln.add"(%50, %75) : (tensor<1x?x32xf32, "B">, tensor<1x?x32xf32, "B">) -> tensor<1x?x32xf32, "B">
    %77 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %78 = "kiln.rms_norm"(%76, %77) {eps = 1.0e-05} : (tensor<1x?x32xf32, "B">, tensor<32xf32>) -> tensor<1x?x32xf32, "B">
    %79 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %80 = "kiln.linear"(%78, %79) : (tensor<1x?x32xf32, "B">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "B">
    %81 = "kiln.slice"(%80) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "B">) -> tensor<1x?x64xf32, "B">
    %82 = "kiln.slice"(%80) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "B">) -> tensor<1x?x64xf32, "B">
    %83 = "kiln.silu"(%81) : (tensor<1x?x64xf32, "B">) -> tensor<1x?x64xf32, "B">
    %84 = "kiln.mul"(%83, %82) : (tensor<1x?x64xf32, "B">, tensor<1x?x64xf32, "B">) -> tensor<1x?x64xf32, "B">
    %85 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %86 = "kiln.linear"(%84, %85) : (tensor<1x?x64xf32, "B">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "B">
    %87 = "kiln.add"(%76, %86) : (tensor<1x?x32xf32, "B">, tensor<1x?x32xf32, "B">) -> tensor<1x?x32xf32, "B">
    %88 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %89 = "kiln.rms_norm"(%87, %88) {eps = 1.0e-05} : (tensor<1x?x32xf32, "B">, tensor<32xf32>) -> tensor<1x?x32xf32, "B">
    %90 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %91 = "kiln.linear"(%89, %90) : (tensor<1x?x32xf32, "B">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "B">
    %92:2 = "kiln.draft_pick"(%91, %sampling, %seed) {step = 2} : (tensor<1x?x64xf32, "B">, tensor<3xf32>, tensor<1xi64>) -> (tensor<?xi64, "B">, tensor<?x64xf32, "B">)
    %93:7 = "kiln.chain_tree"(%roots, %root_pos, %seqs, %45#0, %92#0, %45#1, %92#1) {k = 2} : (tensor<?xi64, "B">, tensor<?xi64, "B">, tensor<?xi64, "B">, tensor<?xi64, "B">, tensor<?xi64, "B">, tensor<?x64xf32, "B">, tensor<?x64xf32, "B">) -> (tensor<1x?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi1, "3*B,3*B">, tensor<?xi64, "3*B">, tensor<?x64xf32, "3*B">)
    %94 = "kiln.reshape"(%93#1) {shape = [1, "3*B"]} : (tensor<?xi64, "3*B">) -> tensor<1x?xi64, "3*B">
    %95 = "kiln.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xf32>
    %96 = "kiln.embedding"(%95, %93#0) : (tensor<64x32xf32>, tensor<1x?xi64, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %97 = "kiln.weight"() {name = "model.rotary_emb.inv_freq"} : () -> tensor<4xf32>
    %98 = "kiln.weight"() {name = "model.layers.0.input_layernorm.weight"} : () -> tensor<32xf32>
    %99 = "kiln.rms_norm"(%96, %98) {eps = 1.0e-05} : (tensor<1x?x32xf32, "3*B">, tensor<32xf32>) -> tensor<1x?x32xf32, "3*B">
    %100 = "kiln.weight"() {name = "model.layers.0.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %101 = "kiln.linear"(%99, %100) : (tensor<1x?x32xf32, "3*B">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "3*B">
    %102 = "kiln.slice"(%101) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %103 = "kiln.slice"(%101) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x16xf32, "3*B">
    %104 = "kiln.slice"(%101) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x16xf32, "3*B">
    %105 = "kiln.reshape"(%102) {shape = [1, "3*B", 4, 8]} : (tensor<1x?x32xf32, "3*B">) -> tensor<1x?x4x8xf32, "3*B">
    %106 = "kiln.transpose"(%105) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "3*B">) -> tensor<1x4x?x8xf32, "3*B">
    %107 = "kiln.reshape"(%103) {shape = [1, "3*B", 2, 8]} : (tensor<1x?x16xf32, "3*B">) -> tensor<1x?x2x8xf32, "3*B">
    %108 = "kiln.transpose"(%107) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "3*B">) -> tensor<1x2x?x8xf32, "3*B">
    %109 = "kiln.reshape"(%104) {shape = [1, "3*B", 2, 8]} : (tensor<1x?x16xf32, "3*B">) -> tensor<1x?x2x8xf32, "3*B">
    %110 = "kiln.transpose"(%109) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "3*B">) -> tensor<1x2x?x8xf32, "3*B">
    %111 = "kiln.rope_cos"(%94, %97) {scale = 1.0} : (tensor<1x?xi64, "3*B">, tensor<4xf32>) -> tensor<1x?x8xf32, "3*B">
    %112 = "kiln.rope_sin"(%94, %97) {scale = 1.0} : (tensor<1x?xi64, "3*B">, tensor<4xf32>) -> tensor<1x?x8xf32, "3*B">
    %113 = "kiln.rope"(%106, %111, %112) : (tensor<1x4x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">) -> tensor<1x4x?x8xf32, "3*B">
    %114 = "kiln.rope"(%108, %111, %112) : (tensor<1x2x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">) -> tensor<1x2x?x8xf32, "3*B">
    %115 = "kiln.cache_write"(%k_cache, %114, %93#3, %93#2, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %116 = "kiln.cache_write"(%v_cache, %110, %93#3, %93#2, %block_table) {layer = 0, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %117 = "kiln.cache_tree_attention"(%113, %115, %116, %93#3, %93#2, %block_table, %93#4) {layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "3*B">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">, tensor<?x?xi1, "3*B,3*B">) -> tensor<1x4x?x8xf32, "3*B">
    %118 = "kiln.transpose"(%117) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "3*B">) -> tensor<1x?x4x8xf32, "3*B">
    %119 = "kiln.reshape"(%118) {shape = [1, "3*B", 32]} : (tensor<1x?x4x8xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %120 = "kiln.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %121 = "kiln.linear"(%119, %120) : (tensor<1x?x32xf32, "3*B">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "3*B">
    %122 = "kiln.add"(%96, %121) : (tensor<1x?x32xf32, "3*B">, tensor<1x?x32xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %123 = "kiln.weight"() {name = "model.layers.0.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %124 = "kiln.rms_norm"(%122, %123) {eps = 1.0e-05} : (tensor<1x?x32xf32, "3*B">, tensor<32xf32>) -> tensor<1x?x32xf32, "3*B">
    %125 = "kiln.weight"() {name = "model.layers.0.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %126 = "kiln.linear"(%124, %125) : (tensor<1x?x32xf32, "3*B">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "3*B">
    %127 = "kiln.slice"(%126) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %128 = "kiln.slice"(%126) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %129 = "kiln.silu"(%127) : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %130 = "kiln.mul"(%129, %128) : (tensor<1x?x64xf32, "3*B">, tensor<1x?x64xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %131 = "kiln.weight"() {name = "model.layers.0.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %132 = "kiln.linear"(%130, %131) : (tensor<1x?x64xf32, "3*B">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "3*B">
    %133 = "kiln.add"(%122, %132) : (tensor<1x?x32xf32, "3*B">, tensor<1x?x32xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %134 = "kiln.weight"() {name = "model.layers.1.input_layernorm.weight"} : () -> tensor<32xf32>
    %135 = "kiln.rms_norm"(%133, %134) {eps = 1.0e-05} : (tensor<1x?x32xf32, "3*B">, tensor<32xf32>) -> tensor<1x?x32xf32, "3*B">
    %136 = "kiln.weight"() {name = "model.layers.1.self_attn.qkv_proj.weight"} : () -> tensor<64x32xf32>
    %137 = "kiln.linear"(%135, %136) : (tensor<1x?x32xf32, "3*B">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "3*B">
    %138 = "kiln.slice"(%137) {dim = 2, end = 32, start = 0} : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %139 = "kiln.slice"(%137) {dim = 2, end = 48, start = 32} : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x16xf32, "3*B">
    %140 = "kiln.slice"(%137) {dim = 2, end = 64, start = 48} : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x16xf32, "3*B">
    %141 = "kiln.reshape"(%138) {shape = [1, "3*B", 4, 8]} : (tensor<1x?x32xf32, "3*B">) -> tensor<1x?x4x8xf32, "3*B">
    %142 = "kiln.transpose"(%141) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "3*B">) -> tensor<1x4x?x8xf32, "3*B">
    %143 = "kiln.reshape"(%139) {shape = [1, "3*B", 2, 8]} : (tensor<1x?x16xf32, "3*B">) -> tensor<1x?x2x8xf32, "3*B">
    %144 = "kiln.transpose"(%143) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "3*B">) -> tensor<1x2x?x8xf32, "3*B">
    %145 = "kiln.reshape"(%140) {shape = [1, "3*B", 2, 8]} : (tensor<1x?x16xf32, "3*B">) -> tensor<1x?x2x8xf32, "3*B">
    %146 = "kiln.transpose"(%145) {dim0 = 1, dim1 = 2} : (tensor<1x?x2x8xf32, "3*B">) -> tensor<1x2x?x8xf32, "3*B">
    %147 = "kiln.rope"(%142, %111, %112) : (tensor<1x4x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">) -> tensor<1x4x?x8xf32, "3*B">
    %148 = "kiln.rope"(%144, %111, %112) : (tensor<1x2x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">, tensor<1x?x8xf32, "3*B">) -> tensor<1x2x?x8xf32, "3*B">
    %149 = "kiln.cache_write"(%115, %148, %93#3, %93#2, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %150 = "kiln.cache_write"(%116, %146, %93#3, %93#2, %block_table) {layer = 1, layout = "contiguous"} : (tensor<2x?x2x64x8xf32, "NB">, tensor<1x2x?x8xf32, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %151 = "kiln.cache_tree_attention"(%147, %149, %150, %93#3, %93#2, %block_table, %93#4) {layer = 1, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "3*B">, tensor<2x?x2x64x8xf32, "NB">, tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">, tensor<?x?xi1, "3*B,3*B">) -> tensor<1x4x?x8xf32, "3*B">
    %152 = "kiln.transpose"(%151) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "3*B">) -> tensor<1x?x4x8xf32, "3*B">
    %153 = "kiln.reshape"(%152) {shape = [1, "3*B", 32]} : (tensor<1x?x4x8xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %154 = "kiln.weight"() {name = "model.layers.1.self_attn.o_proj.weight"} : () -> tensor<32x32xf32>
    %155 = "kiln.linear"(%153, %154) : (tensor<1x?x32xf32, "3*B">, tensor<32x32xf32>) -> tensor<1x?x32xf32, "3*B">
    %156 = "kiln.add"(%133, %155) : (tensor<1x?x32xf32, "3*B">, tensor<1x?x32xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %157 = "kiln.weight"() {name = "model.layers.1.post_attention_layernorm.weight"} : () -> tensor<32xf32>
    %158 = "kiln.rms_norm"(%156, %157) {eps = 1.0e-05} : (tensor<1x?x32xf32, "3*B">, tensor<32xf32>) -> tensor<1x?x32xf32, "3*B">
    %159 = "kiln.weight"() {name = "model.layers.1.mlp.gate_up_proj.weight"} : () -> tensor<128x32xf32>
    %160 = "kiln.linear"(%158, %159) : (tensor<1x?x32xf32, "3*B">, tensor<128x32xf32>) -> tensor<1x?x128xf32, "3*B">
    %161 = "kiln.slice"(%160) {dim = 2, end = 64, start = 0} : (tensor<1x?x128xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %162 = "kiln.slice"(%160) {dim = 2, end = 128, start = 64} : (tensor<1x?x128xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %163 = "kiln.silu"(%161) : (tensor<1x?x64xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %164 = "kiln.mul"(%163, %162) : (tensor<1x?x64xf32, "3*B">, tensor<1x?x64xf32, "3*B">) -> tensor<1x?x64xf32, "3*B">
    %165 = "kiln.weight"() {name = "model.layers.1.mlp.down_proj.weight"} : () -> tensor<32x64xf32>
    %166 = "kiln.linear"(%164, %165) : (tensor<1x?x64xf32, "3*B">, tensor<32x64xf32>) -> tensor<1x?x32xf32, "3*B">
    %167 = "kiln.add"(%156, %166) : (tensor<1x?x32xf32, "3*B">, tensor<1x?x32xf32, "3*B">) -> tensor<1x?x32xf32, "3*B">
    %168 = "kiln.weight"() {name = "model.norm.weight"} : () -> tensor<32xf32>
    %169 = "kiln.rms_norm"(%167, %168) {eps = 1.0e-05} : (tensor<1x?x32xf32, "3*B">, tensor<32xf32>) -> tensor<1x?x32xf32, "3*B">
    %170 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %171 = "kiln.linear"(%169, %170) : (tensor<1x?x32xf32, "3*B">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "3*B">
    %172:2 = "kiln.tree_accept"(%171, %93#0, %93#5, %93#2, %93#6, %sampling, %seed) : (tensor<1x?x64xf32, "3*B">, tensor<1x?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x64xf32, "3*B">, tensor<3xf32>, tensor<1xi64>) -> (tensor<?xi64, "3*B">, tensor<?xi64, "3*B">)
    %173 = "kiln.cache_commit"(%149, %172#0, %93#3, %93#1, %93#2, %block_table) : (tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    %174 = "kiln.cache_commit"(%150, %172#0, %93#3, %93#1, %93#2, %block_table) : (tensor<2x?x2x64x8xf32, "NB">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?x?xi64, "S,MB">) -> tensor<2x?x2x64x8xf32, "NB">
    "kiln.return"(%93#0, %172#0, %172#1, %171) : (tensor<1x?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<?xi64, "3*B">, tensor<1x?x64xf32, "3*B">) -> ()
  }) {sym_name = "spec_step"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, draft_kv_cache = {block_size = 64, bytes_per_token = 128, dtype = "f32", head_dim = 8, kv_heads = 2, layers = 1, layout = "contiguous"}, eos_token_id = 2, family = "llama", kv_cache = {block_size = 64, bytes_per_token = 256, dtype = "f32", head_dim = 8, kv_heads = 2, layers = 2, layout = "contiguous"}, max_positions = 64, speculative = {adaptive = 0.0, agreement = 0.0547, calibration_tokens = 128, draft_layers = 1, drafter = "self", fused_step = true, k = 2, policy = "fixed", search = [{agreement = 0.0547, skip = [0]}], skip_layers = [0]}, vocab_size = 64}} : () -> ()
