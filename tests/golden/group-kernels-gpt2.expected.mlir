// Golden output: group-kernels-gpt2.input.mlir after the one pass below (tests/test_golden.py compares
// the printed IR with this file's IR exactly). Regenerate: python tools/golden.py --write
// case: group-kernels-gpt2
// pass: group-kernels
"builtin.module"() ({
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
    %0 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %1 = "kiln.embedding"(%0, %input_ids) : (tensor<64x32xf32>, tensor<?x?xi64, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %2 = "kiln.weight"() {name = "transformer.wpe.weight"} : () -> tensor<64x32xf32>
    %3 = "kiln.positions"(%input_ids) : (tensor<?x?xi64, "B,T">) -> tensor<?x?xi64, "B,T">
    %4 = "kiln.slice"(%3) {dim = 0, end = 1, start = 0} : (tensor<?x?xi64, "B,T">) -> tensor<1x?xi64, "T">
    %5 = "kiln.embedding"(%2, %4) : (tensor<64x32xf32>, tensor<1x?xi64, "T">) -> tensor<1x?x32xf32, "T">
    %6 = "kiln.add"(%1, %5) : (tensor<?x?x32xf32, "B,T">, tensor<1x?x32xf32, "T">) -> tensor<?x?x32xf32, "B,T">
    %7 = "kiln.weight"() {name = "transformer.h.0.ln_1.weight"} : () -> tensor<32xf32>
    %8 = "kiln.weight"() {name = "transformer.h.0.ln_1.bias"} : () -> tensor<32xf32>
    %9 = "kiln.layer_norm"(%6, %7, %8) {eps = 1.0e-05, kernel = "rowwise0"} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %10 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.bias"} : () -> tensor<96xf32>
    %11 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.weight.transpose"} : () -> tensor<96x32xf32>
    %12 = "kiln.linear"(%9, %11, %10) {kernel = "gemm1"} : (tensor<?x?x32xf32, "B,T">, tensor<96x32xf32>, tensor<96xf32>) -> tensor<?x?x96xf32, "B,T">
    %13 = "kiln.slice"(%12) {dim = 2, end = 32, start = 0} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %14 = "kiln.slice"(%12) {dim = 2, end = 64, start = 32} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %15 = "kiln.slice"(%12) {dim = 2, end = 96, start = 64} : (tensor<?x?x96xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %16 = "kiln.reshape"(%14) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %17 = "kiln.transpose"(%16) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %18 = "kiln.reshape"(%15) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %19 = "kiln.transpose"(%18) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %20 = "kiln.reshape"(%13) {shape = ["B", "T", 4, 8]} : (tensor<?x?x32xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %21 = "kiln.transpose"(%20) {dim0 = 1, dim1 = 2} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %22 = "kiln.attention"(%21, %17, %19) {causal = true, kernel = "attention2", scale = 0.3535533905932738} : (tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">, tensor<?x4x?x8xf32, "B,T">) -> tensor<?x4x?x8xf32, "B,T">
    %23 = "kiln.transpose"(%22) {dim0 = 1, dim1 = 2} : (tensor<?x4x?x8xf32, "B,T">) -> tensor<?x?x4x8xf32, "B,T">
    %24 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.bias"} : () -> tensor<32xf32>
    %25 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.weight.transpose"} : () -> tensor<32x32xf32>
    %26 = "kiln.reshape"(%23) {shape = ["B", "T", 32]} : (tensor<?x?x4x8xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %27 = "kiln.linear"(%26, %25, %24) {kernel = "gemm3"} : (tensor<?x?x32xf32, "B,T">, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %28 = "kiln.add"(%27, %6) {kernel = "rowwise4"} : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %29 = "kiln.weight"() {name = "transformer.h.0.ln_2.weight"} : () -> tensor<32xf32>
    %30 = "kiln.weight"() {name = "transformer.h.0.ln_2.bias"} : () -> tensor<32xf32>
    %31 = "kiln.layer_norm"(%28, %29, %30) {eps = 1.0e-05, kernel = "rowwise4"} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %32 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.bias"} : () -> tensor<128xf32>
    %33 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.weight.transpose"} : () -> tensor<128x32xf32>
    %34 = "kiln.linear"(%31, %33, %32) {kernel = "gemm5"} : (tensor<?x?x32xf32, "B,T">, tensor<128x32xf32>, tensor<128xf32>) -> tensor<?x?x128xf32, "B,T">
    %35 = "kiln.gelu"(%34) {approximate = "tanh", kernel = "gemm5"} : (tensor<?x?x128xf32, "B,T">) -> tensor<?x?x128xf32, "B,T">
    %36 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.bias"} : () -> tensor<32xf32>
    %37 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.weight.transpose"} : () -> tensor<32x128xf32>
    %38 = "kiln.linear"(%35, %37, %36) {kernel = "gemm6"} : (tensor<?x?x128xf32, "B,T">, tensor<32x128xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %39 = "kiln.add"(%28, %38) {kernel = "rowwise7"} : (tensor<?x?x32xf32, "B,T">, tensor<?x?x32xf32, "B,T">) -> tensor<?x?x32xf32, "B,T">
    %40 = "kiln.weight"() {name = "transformer.ln_f.weight"} : () -> tensor<32xf32>
    %41 = "kiln.weight"() {name = "transformer.ln_f.bias"} : () -> tensor<32xf32>
    %42 = "kiln.layer_norm"(%39, %40, %41) {eps = 1.0e-05, kernel = "rowwise7"} : (tensor<?x?x32xf32, "B,T">, tensor<32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32, "B,T">
    %43 = "kiln.linear"(%42, %0) {kernel = "gemm8"} : (tensor<?x?x32xf32, "B,T">, tensor<64x32xf32>) -> tensor<?x?x64xf32, "B,T">
    "kiln.return"(%43) : (tensor<?x?x64xf32, "B,T">) -> ()
  }) {sym_name = "forward"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x4x64x8xf32, "NB">, %v_cache: tensor<1x?x4x64x8xf32, "NB">, %logits_at: tensor<?xi64, "K">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %input_ids) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %3 = "kiln.weight"() {name = "transformer.wpe.weight"} : () -> tensor<64x32xf32>
    %4 = "kiln.embedding"(%3, %0) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %5 = "kiln.add"(%2, %4) {kernel = "rowwise0"} : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %6 = "kiln.weight"() {name = "transformer.h.0.ln_1.weight"} : () -> tensor<32xf32>
    %7 = "kiln.weight"() {name = "transformer.h.0.ln_1.bias"} : () -> tensor<32xf32>
    %8 = "kiln.layer_norm"(%5, %6, %7) {eps = 1.0e-05, kernel = "rowwise0"} : (tensor<1x?x32xf32, "N">, tensor<32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %9 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.bias"} : () -> tensor<96xf32>
    %10 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.weight.transpose"} : () -> tensor<96x32xf32>
    %11 = "kiln.linear"(%8, %10, %9) {kernel = "gemm1"} : (tensor<1x?x32xf32, "N">, tensor<96x32xf32>, tensor<96xf32>) -> tensor<1x?x96xf32, "N">
    %12 = "kiln.slice"(%11) {dim = 2, end = 32, start = 0} : (tensor<1x?x96xf32, "N">) -> tensor<1x?x32xf32, "N">
    %13 = "kiln.slice"(%11) {dim = 2, end = 64, start = 32} : (tensor<1x?x96xf32, "N">) -> tensor<1x?x32xf32, "N">
    %14 = "kiln.slice"(%11) {dim = 2, end = 96, start = 64} : (tensor<1x?x96xf32, "N">) -> tensor<1x?x32xf32, "N">
    %15 = "kiln.reshape"(%13) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %17 = "kiln.reshape"(%14) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %19 = "kiln.reshape"(%12) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %20 = "kiln.transpose"(%19) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %21 = "kiln.cache_write"(%k_cache, %16, %pos, %seq, %block_table) {kernel = "cache_write2", layer = 0, layout = "contiguous"} : (tensor<1x?x4x64x8xf32, "NB">, tensor<1x4x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x4x64x8xf32, "NB">
    %22 = "kiln.cache_write"(%v_cache, %18, %pos, %seq, %block_table) {kernel = "cache_write2", layer = 0, layout = "contiguous"} : (tensor<1x?x4x64x8xf32, "NB">, tensor<1x4x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x4x64x8xf32, "NB">
    %23 = "kiln.cache_attention"(%20, %21, %22, %pos, %seq, %block_table) {kernel = "cache_attention3", layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x4x64x8xf32, "NB">, tensor<1x?x4x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %25 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.bias"} : () -> tensor<32xf32>
    %26 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.weight.transpose"} : () -> tensor<32x32xf32>
    %27 = "kiln.reshape"(%24) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.linear"(%27, %26, %25) {kernel = "gemm4"} : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %29 = "kiln.add"(%28, %5) {kernel = "rowwise5"} : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %30 = "kiln.weight"() {name = "transformer.h.0.ln_2.weight"} : () -> tensor<32xf32>
    %31 = "kiln.weight"() {name = "transformer.h.0.ln_2.bias"} : () -> tensor<32xf32>
    %32 = "kiln.layer_norm"(%29, %30, %31) {eps = 1.0e-05, kernel = "rowwise5"} : (tensor<1x?x32xf32, "N">, tensor<32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %33 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.bias"} : () -> tensor<128xf32>
    %34 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.weight.transpose"} : () -> tensor<128x32xf32>
    %35 = "kiln.linear"(%32, %34, %33) {kernel = "gemm6"} : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>, tensor<128xf32>) -> tensor<1x?x128xf32, "N">
    %36 = "kiln.gelu"(%35) {approximate = "tanh", kernel = "gemm6"} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x128xf32, "N">
    %37 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.bias"} : () -> tensor<32xf32>
    %38 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.weight.transpose"} : () -> tensor<32x128xf32>
    %39 = "kiln.linear"(%36, %38, %37) {kernel = "gemm7"} : (tensor<1x?x128xf32, "N">, tensor<32x128xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %40 = "kiln.add"(%29, %39) {kernel = "rowwise8"} : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %41 = "kiln.weight"() {name = "transformer.ln_f.weight"} : () -> tensor<32xf32>
    %42 = "kiln.weight"() {name = "transformer.ln_f.bias"} : () -> tensor<32xf32>
    %43 = "kiln.layer_norm"(%40, %41, %42) {eps = 1.0e-05, kernel = "rowwise8"} : (tensor<1x?x32xf32, "N">, tensor<32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %44 = "kiln.gather"(%43, %logits_at) {dim = 1} : (tensor<1x?x32xf32, "N">, tensor<?xi64, "K">) -> tensor<1x?x32xf32, "K">
    %45 = "kiln.linear"(%44, %1) {kernel = "gemm9"} : (tensor<1x?x32xf32, "K">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "K">
    "kiln.return"(%45) : (tensor<1x?x64xf32, "K">) -> ()
  }) {sym_name = "prefill"} : () -> ()
  "kiln.program"() ({
  ^bb0(%input_ids: tensor<1x?xi64, "N">, %pos: tensor<?xi64, "N">, %seq: tensor<?xi64, "N">, %block_table: tensor<?x?xi64, "S,MB">, %k_cache: tensor<1x?x4x64x8xf32, "NB">, %v_cache: tensor<1x?x4x64x8xf32, "NB">):
    %0 = "kiln.reshape"(%pos) {shape = [1, "N"]} : (tensor<?xi64, "N">) -> tensor<1x?xi64, "N">
    %1 = "kiln.weight"() {name = "lm_head.weight"} : () -> tensor<64x32xf32>
    %2 = "kiln.embedding"(%1, %input_ids) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %3 = "kiln.weight"() {name = "transformer.wpe.weight"} : () -> tensor<64x32xf32>
    %4 = "kiln.embedding"(%3, %0) : (tensor<64x32xf32>, tensor<1x?xi64, "N">) -> tensor<1x?x32xf32, "N">
    %5 = "kiln.add"(%2, %4) {kernel = "rowwise0"} : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %6 = "kiln.weight"() {name = "transformer.h.0.ln_1.weight"} : () -> tensor<32xf32>
    %7 = "kiln.weight"() {name = "transformer.h.0.ln_1.bias"} : () -> tensor<32xf32>
    %8 = "kiln.layer_norm"(%5, %6, %7) {eps = 1.0e-05, kernel = "rowwise0"} : (tensor<1x?x32xf32, "N">, tensor<32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %9 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.bias"} : () -> tensor<96xf32>
    %10 = "kiln.weight"() {name = "transformer.h.0.attn.c_attn.weight.transpose"} : () -> tensor<96x32xf32>
    %11 = "kiln.linear"(%8, %10, %9) {kernel = "gemm1"} : (tensor<1x?x32xf32, "N">, tensor<96x32xf32>, tensor<96xf32>) -> tensor<1x?x96xf32, "N">
    %12 = "kiln.slice"(%11) {dim = 2, end = 32, start = 0} : (tensor<1x?x96xf32, "N">) -> tensor<1x?x32xf32, "N">
    %13 = "kiln.slice"(%11) {dim = 2, end = 64, start = 32} : (tensor<1x?x96xf32, "N">) -> tensor<1x?x32xf32, "N">
    %14 = "kiln.slice"(%11) {dim = 2, end = 96, start = 64} : (tensor<1x?x96xf32, "N">) -> tensor<1x?x32xf32, "N">
    %15 = "kiln.reshape"(%13) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %16 = "kiln.transpose"(%15) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %17 = "kiln.reshape"(%14) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %18 = "kiln.transpose"(%17) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %19 = "kiln.reshape"(%12) {shape = [1, "N", 4, 8]} : (tensor<1x?x32xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %20 = "kiln.transpose"(%19) {dim0 = 1, dim1 = 2} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x4x?x8xf32, "N">
    %21 = "kiln.cache_write"(%k_cache, %16, %pos, %seq, %block_table) {kernel = "cache_write2", layer = 0, layout = "contiguous"} : (tensor<1x?x4x64x8xf32, "NB">, tensor<1x4x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x4x64x8xf32, "NB">
    %22 = "kiln.cache_write"(%v_cache, %18, %pos, %seq, %block_table) {kernel = "cache_write2", layer = 0, layout = "contiguous"} : (tensor<1x?x4x64x8xf32, "NB">, tensor<1x4x?x8xf32, "N">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x?x4x64x8xf32, "NB">
    %23 = "kiln.cache_attention"(%20, %21, %22, %pos, %seq, %block_table) {kernel = "cache_attention3", layer = 0, layout = "contiguous", scale = 0.3535533905932738} : (tensor<1x4x?x8xf32, "N">, tensor<1x?x4x64x8xf32, "NB">, tensor<1x?x4x64x8xf32, "NB">, tensor<?xi64, "N">, tensor<?xi64, "N">, tensor<?x?xi64, "S,MB">) -> tensor<1x4x?x8xf32, "N">
    %24 = "kiln.transpose"(%23) {dim0 = 1, dim1 = 2} : (tensor<1x4x?x8xf32, "N">) -> tensor<1x?x4x8xf32, "N">
    %25 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.bias"} : () -> tensor<32xf32>
    %26 = "kiln.weight"() {name = "transformer.h.0.attn.c_proj.weight.transpose"} : () -> tensor<32x32xf32>
    %27 = "kiln.reshape"(%24) {shape = [1, "N", 32]} : (tensor<1x?x4x8xf32, "N">) -> tensor<1x?x32xf32, "N">
    %28 = "kiln.linear"(%27, %26, %25) {kernel = "gemm4"} : (tensor<1x?x32xf32, "N">, tensor<32x32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %29 = "kiln.add"(%28, %5) {kernel = "rowwise5"} : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %30 = "kiln.weight"() {name = "transformer.h.0.ln_2.weight"} : () -> tensor<32xf32>
    %31 = "kiln.weight"() {name = "transformer.h.0.ln_2.bias"} : () -> tensor<32xf32>
    %32 = "kiln.layer_norm"(%29, %30, %31) {eps = 1.0e-05, kernel = "rowwise5"} : (tensor<1x?x32xf32, "N">, tensor<32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %33 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.bias"} : () -> tensor<128xf32>
    %34 = "kiln.weight"() {name = "transformer.h.0.mlp.c_fc.weight.transpose"} : () -> tensor<128x32xf32>
    %35 = "kiln.linear"(%32, %34, %33) {kernel = "gemm6"} : (tensor<1x?x32xf32, "N">, tensor<128x32xf32>, tensor<128xf32>) -> tensor<1x?x128xf32, "N">
    %36 = "kiln.gelu"(%35) {approximate = "tanh", kernel = "gemm6"} : (tensor<1x?x128xf32, "N">) -> tensor<1x?x128xf32, "N">
    %37 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.bias"} : () -> tensor<32xf32>
    %38 = "kiln.weight"() {name = "transformer.h.0.mlp.c_proj.weight.transpose"} : () -> tensor<32x128xf32>
    %39 = "kiln.linear"(%36, %38, %37) {kernel = "gemm7"} : (tensor<1x?x128xf32, "N">, tensor<32x128xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %40 = "kiln.add"(%29, %39) {kernel = "rowwise8"} : (tensor<1x?x32xf32, "N">, tensor<1x?x32xf32, "N">) -> tensor<1x?x32xf32, "N">
    %41 = "kiln.weight"() {name = "transformer.ln_f.weight"} : () -> tensor<32xf32>
    %42 = "kiln.weight"() {name = "transformer.ln_f.bias"} : () -> tensor<32xf32>
    %43 = "kiln.layer_norm"(%40, %41, %42) {eps = 1.0e-05, kernel = "rowwise8"} : (tensor<1x?x32xf32, "N">, tensor<32xf32>, tensor<32xf32>) -> tensor<1x?x32xf32, "N">
    %44 = "kiln.linear"(%43, %1) {kernel = "gemm9"} : (tensor<1x?x32xf32, "N">, tensor<64x32xf32>) -> tensor<1x?x64xf32, "N">
    "kiln.return"(%44) : (tensor<1x?x64xf32, "N">) -> ()
  }) {sym_name = "decode"} : () -> ()
}) {kiln.meta = {bos_token_id = 1, eos_token_id = 2, family = "gpt2", kv_cache = {block_size = 64, bytes_per_token = 256, dtype = "f32", head_dim = 8, kv_heads = 4, layers = 1, layout = "contiguous"}, max_positions = 64, vocab_size = 64}} : () -> ()
