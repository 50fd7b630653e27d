// Golden input: the IR immediately before one pass; tests/test_golden.py runs that pass on it
// and compares the result with speculative-self.expected.mlir. Regenerate: python tools/golden.py --write
// case: speculative-self
// pass: speculative{drafter=self,k=2,skip=1}
// model: llama-tiny shrunk to 2 layers, hidden 32, 4 heads / 2 KV heads (head dim 8), MLP 64, vocab 64, context 64
// preceded by: canonicalize, fold-constants, cse, dce, fuse-qkv, fuse-gate-up, canonicalize, cse, dce, kv-cache,
//   canonicalize, dce (pipeline 'default', all of it, as kiln compile --draft self --spec-k 2 --spec-skip 1)
// note: the speculative pass can run alone except for what kiln compile gives it: calibration windows of held-out
//   text; without them (here) it measures agreement on its own seeded random token windows, with the golden weights
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
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "llama", kv_cache = {block_size = 64, bytes_per_token = 256, dtype = "f32", head_dim = 8, kv_heads = 2, layers = 2, layout = "contiguous"}, max_positions = 64, vocab_size = 64}} : () -> ()
