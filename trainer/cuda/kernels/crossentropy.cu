// Cross-entropy of logits rows against targets, one block per row. The loss
// of counted rows is added (float64) into *loss_sum; with grad the row
// becomes grad_scale·(softmax − onehot) in place (zero for ignored rows).
// With softcap > 0 the scored logits are y = softcap·tanh(x/softcap)
// (Gemma-2's final_logit_softcapping) and the gradient carries
// dy/dx = 1 − (y/softcap)²: with grad the row holds y until the end.

extern "C" __global__ void cross_entropy(float* logits, const int* targets, int vocab, float softcap, int grad, float grad_scale,
                                         double* loss_sum) {
    __shared__ float sh[32];
    long long r = blockIdx.x;
    float* row = logits + r * vocab;
    int t = targets[r];
    if (t == -100) {
        if (grad)
            for (int j = threadIdx.x; j < vocab; j += blockDim.x) row[j] = 0.0f;
        return;
    }
    float target_logit = row[t]; // before any thread overwrites the row
    if (softcap > 0.0f) {
        target_logit = soft_capped(target_logit, softcap);
        float mx = EFT_NEG_INF;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            float y = soft_capped(row[j], softcap);
            if (grad) row[j] = y;
            mx = fmaxf(mx, y);
        }
        mx = block_max(mx, sh);
        float se = 0.0f;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) se += expf((grad ? row[j] : soft_capped(row[j], softcap)) - mx);
        se = block_sum(se, sh);
        if (threadIdx.x == 0) atomicAdd(loss_sum, (double)mx + log((double)se) - (double)target_logit);
        if (!grad) return;
        float inv = grad_scale / se;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            float y = row[j], th = y / softcap;
            float g = expf(y - mx) * inv - (j == t ? grad_scale : 0.0f);
            row[j] = g * (1.0f - th * th);
        }
        return;
    }
    float mx = EFT_NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_max(mx, sh);
    float se = 0.0f;
    if (grad) {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            float e = expf(row[j] - mx);
            row[j] = e;
            se += e;
        }
    } else {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) se += expf(row[j] - mx);
    }
    se = block_sum(se, sh);
    if (threadIdx.x == 0) atomicAdd(loss_sum, (double)mx + log((double)se) - (double)target_logit);
    if (!grad) return;
    float inv = grad_scale / se;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) row[j] *= inv;
    __syncthreads();
    if (threadIdx.x == 0) row[t] -= grad_scale;
}
