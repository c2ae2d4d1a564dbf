// snn_kernels.h: one kernel per layer kind of a spike-driven network (snncc HLS backend).
//
// Every value is a flat array in C (row-major) order; shapes are template parameters and
// the kernels walk the arrays with offsets that advance by additions. The spike-driven
// kernels contain no multiplier: a binary spike selects a weight row (or a row of spike
// counts) that is added, and a DIF neuron compares its membrane with a threshold table.
// Only dense_analog and conv_analog multiply: the input layer, when the input codes have
// more levels than the spike window.
//
// The per-step semantics are those of snncc's step engine, bit for bit. UNROLL is the
// number of parallel lanes snncc chose for the layer from its size or the parallelism
// knob; g++ ignores the pragmas (build with -Wno-unknown-pragmas).
#ifndef SNN_KERNELS_H_
#define SNN_KERNELS_H_

#include <cstdint>

namespace snn {

typedef bool spike_t;

// ------------------------------------------------------------------ buffers

// x = 0: reset a state, or a value whose activity window has closed.
template <int N, typename T>
void clear(T x[N]) {
#pragma HLS INLINE
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
    x[i] = 0;
  }
}

// Input code c (LO <= c) becomes c - LO spikes, one per step at steps 0 .. c - LO - 1.
template <int N, int LO, typename code_t>
void encode(const code_t codes[N], int t, spike_t out[N]) {
#pragma HLS INLINE
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
    out[i] = codes[i] - LO > t;
  }
}

// ------------------------------------------------------------------ synapses

// Spike-driven dense layer: in [ROWS][K] spikes, w [K][M]. Every spike (r, k) adds the
// weight row w[k][:] to out[r][:].
template <int ROWS, int K, int M, int UNROLL, typename w_t, typename cur_t>
void dense_spikes(const spike_t in[ROWS * K], const w_t w[K][M], cur_t out[ROWS * M]) {
#pragma HLS INLINE
  clear<ROWS * M>(out);
  int ib = 0, ob = 0;
  for (int r = 0; r < ROWS; r++) {
    for (int k = 0; k < K; k++) {
      if (in[ib]) {
        for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
          out[ob + m] += w[k][m];
        }
      }
      ib++;
    }
    ob += M;
  }
}

// Analog dense layer (the input layer only): integer codes times weights, MACs.
template <int ROWS, int K, int M, int UNROLL, typename code_t, typename w_t, typename cur_t>
void dense_analog(const code_t in[ROWS * K], const w_t w[K][M], cur_t out[ROWS * M]) {
#pragma HLS INLINE
  clear<ROWS * M>(out);
  int ib = 0, ob = 0;
  for (int r = 0; r < ROWS; r++) {
    for (int k = 0; k < K; k++) {
      const cur_t code = in[ib];
      if (code != 0) {
        for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
          out[ob + m] += code * w[k][m];
        }
      }
      ib++;
    }
    ob += M;
  }
}

// Spike-driven convolution, event driven: in [G*CG][H][W] spikes, w [G*CG][KH][KW][OG]
// (the weight rows of input channel c: its group's OG output channels), out
// [G*OG][PLANE]. A spike at (c, y, x) adds, for every kernel tap (ky, kx) that carries it
// to an output pixel, the row w[c][ky][kx][:] to that pixel of the group's channels.
// row_to[y][ky] is the offset oy*OW of that pixel's output row and col_to[x][kx] its
// column, -1 where the tap reaches no output (snncc resolves strides, pads, dilations).
template <int G, int CG, int H, int W, int OG, int PLANE, int KH, int KW, int UNROLL,
          typename w_t, typename idx_t, typename cur_t>
void conv_spikes(const spike_t in[G * CG * H * W], const w_t w[G * CG][KH][KW][OG],
                 const idx_t row_to[H][KH], const idx_t col_to[W][KW],
                 cur_t out[G * OG * PLANE]) {
#pragma HLS INLINE
  clear<G * OG * PLANE>(out);
  int ib = 0, c = 0, gb = 0;
  for (int g = 0; g < G; g++) {
    for (int cg = 0; cg < CG; cg++) {
      for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
          if (in[ib]) {
            for (int ky = 0; ky < KH; ky++) {
              const int ro = row_to[y][ky];
              if (ro < 0) continue;
              for (int kx = 0; kx < KW; kx++) {
                const int co = col_to[x][kx];
                if (co < 0) continue;
                int ob = gb + ro + co;
                for (int j = 0; j < OG; j++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
                  out[ob] += w[c][ky][kx][j];
                  ob += PLANE;
                }
              }
            }
          }
          ib++;
        }
      }
      c++;
    }
    gb += OG * PLANE;
  }
}

// Analog convolution (the input layer only): the same scatter, integer codes times
// weights, MACs.
template <int G, int CG, int H, int W, int OG, int PLANE, int KH, int KW, int UNROLL,
          typename code_t, typename w_t, typename idx_t, typename cur_t>
void conv_analog(const code_t in[G * CG * H * W], const w_t w[G * CG][KH][KW][OG],
                 const idx_t row_to[H][KH], const idx_t col_to[W][KW],
                 cur_t out[G * OG * PLANE]) {
#pragma HLS INLINE
  clear<G * OG * PLANE>(out);
  int ib = 0, c = 0, gb = 0;
  for (int g = 0; g < G; g++) {
    for (int cg = 0; cg < CG; cg++) {
      for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
          const cur_t code = in[ib];
          if (code != 0) {
            for (int ky = 0; ky < KH; ky++) {
              const int ro = row_to[y][ky];
              if (ro < 0) continue;
              for (int kx = 0; kx < KW; kx++) {
                const int co = col_to[x][kx];
                if (co < 0) continue;
                int ob = gb + ro + co;
                for (int j = 0; j < OG; j++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
                  out[ob] += code * w[c][ky][kx][j];
                  ob += PLANE;
                }
              }
            }
          }
          ib++;
        }
      }
      c++;
    }
    gb += OG * PLANE;
  }
}

// ------------------------------------------------------------------ neurons

// One DIF neuron at a step where it may fire: the n-th spike (n < LEVELS) fires when
// sv >= th[n]; at most one spike per step.
template <int LEVELS, typename mem_t, typename cnt_t, typename th_t>
inline spike_t dif_fire(mem_t sv, cnt_t &n, const th_t th[LEVELS]) {
#pragma HLS INLINE
  const bool spike = n < LEVELS && sv >= th[n];
  if (spike) n++;
  return spike;
}

// DIF neurons viewed as [OUTER][MID][INNER]; thresholds vary along MID only (th [MID]
// [LEVELS]); sign +1 everywhere. Each step v += I(t); neurons fire only while `fire`
// (from the neuron's t_fire on). One loop walks the neurons in C order, UNROLL a cycle
// (the layer's neurons per cycle: the Verilog engine's NP under the parallelism knob);
// the counters m, k follow each neuron's place by additions, as do all the neuron kernels.
template <int OUTER, int MID, int INNER, int LEVELS, int UNROLL, typename cur_t,
          typename mem_t, typename cnt_t, typename th_t>
void dif(const cur_t in[OUTER * MID * INNER], mem_t v[OUTER * MID * INNER],
         cnt_t n[OUTER * MID * INNER], const th_t th[MID][LEVELS], bool fire,
         spike_t out[OUTER * MID * INNER]) {
#pragma HLS INLINE
  int m = 0, k = 0;  // neuron i sits at [o][m][k]: UNROLL lanes may span several m
  for (int i = 0; i < OUTER * MID * INNER; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
    v[i] += in[i];
    out[i] = fire && dif_fire<LEVELS>(v[i], n[i], th[m]);
    if (++k == INNER) {
      k = 0;
      if (++m == MID) m = 0;
    }
  }
}

// DIF neurons with a sign per MID position (neg[m]: the neuron compares -v): the
// multiplication sign*v is a conditional negation.
template <int OUTER, int MID, int INNER, int LEVELS, int UNROLL, typename cur_t,
          typename mem_t, typename cnt_t, typename th_t>
void dif_signed(const cur_t in[OUTER * MID * INNER], mem_t v[OUTER * MID * INNER],
                cnt_t n[OUTER * MID * INNER], const th_t th[MID][LEVELS],
                const bool neg[MID], bool fire, spike_t out[OUTER * MID * INNER]) {
#pragma HLS INLINE
  int m = 0, k = 0;  // neuron i sits at [o][m][k]: UNROLL lanes may span several m
  for (int i = 0; i < OUTER * MID * INNER; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
    v[i] += in[i];
    const mem_t sv = neg[m] ? static_cast<mem_t>(-v[i]) : v[i];
    out[i] = fire && dif_fire<LEVELS>(sv, n[i], th[m]);
    if (++k == INNER) {
      k = 0;
      if (++m == MID) m = 0;
    }
  }
}

// ------------------------------------------------------------------ temporal decomposition

// TD max pooling: C(t) += S(t); out(t) = maxpool(C(t)) - maxpool(C(t-1)), a binary spike
// (a window's maximum count grows by at most one per step). in [C][PLANE_IN], out
// [C][PLANE_OUT]; row_from[oy][ky] is the offset iy*W of the window's input row and
// col_from[ox][kx] its column, -1 for padding.
template <int C, int PLANE_IN, int PLANE_OUT, int OH, int OW, int KH, int KW,
          typename cnt_t, typename idx_t>
void td_maxpool(const spike_t in[C * PLANE_IN], cnt_t count[C * PLANE_IN],
                cnt_t last[C * PLANE_OUT], const idx_t row_from[OH][KH],
                const idx_t col_from[OW][KW], spike_t out[C * PLANE_OUT]) {
#pragma HLS INLINE
  for (int i = 0; i < C * PLANE_IN; i++) {
#pragma HLS PIPELINE II=1
    count[i] += in[i];
  }
  int ib = 0, ob = 0;
  for (int c = 0; c < C; c++) {
    for (int oy = 0; oy < OH; oy++) {
      for (int ox = 0; ox < OW; ox++) {
#pragma HLS PIPELINE II=1
        cnt_t m = 0;
        for (int ky = 0; ky < KH; ky++) {
          const int ro = row_from[oy][ky];
          if (ro < 0) continue;
          for (int kx = 0; kx < KW; kx++) {
            const int co = col_from[ox][kx];
            if (co < 0) continue;
            const cnt_t x = count[ib + ro + co];
            if (x > m) m = x;
          }
        }
        out[ob] = m != last[ob];
        last[ob] = m;
        ob++;
      }
    }
    ib += PLANE_IN;
  }
}

// TD product of two spike tensors, NB products [N][K] x [K][M]:
//   out(t) = C_A(t-1) S_B(t) + S_A(t) C_B(t),
// summed over the window exactly C_A C_B. Binary spikes select counts to add. a_at[b] and
// b_at[b] are the offsets of the b-th product's operands (batch broadcasting).
template <int NB, int N, int K, int M, int SIZE_A, int SIZE_B, int UNROLL, typename ca_t,
          typename cb_t, typename idx_t, typename cur_t>
void td_matmul(const spike_t sa[SIZE_A], const spike_t sb[SIZE_B], ca_t ca[SIZE_A],
               cb_t cb[SIZE_B], const idx_t a_at[NB], const idx_t b_at[NB],
               cur_t out[NB * N * M]) {
#pragma HLS INLINE
  clear<NB * N * M>(out);
  // B's spikes meet A's counts up to the previous step: out[n][m] += ca[n][k] if sb[k][m].
  int ob = 0;
  for (int b = 0; b < NB; b++) {
    int ar = a_at[b];
    for (int n = 0; n < N; n++) {
      int br = b_at[b];
      for (int k = 0; k < K; k++) {
        const ca_t a = ca[ar + k];
        for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
          if (sb[br + m]) out[ob + m] += a;
        }
        br += M;
      }
      ar += K;
      ob += M;
    }
  }
  for (int i = 0; i < SIZE_B; i++) {
#pragma HLS PIPELINE II=1
    cb[i] += sb[i];
  }
  // A's spikes meet B's counts up to this step: out[n][:] += cb[k][:] if sa[n][k].
  ob = 0;
  for (int b = 0; b < NB; b++) {
    int ar = a_at[b];
    for (int n = 0; n < N; n++) {
      int br = b_at[b];
      for (int k = 0; k < K; k++) {
        if (sa[ar + k]) {
          for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
            out[ob + m] += cb[br + m];
          }
        }
        br += M;
      }
      ar += K;
      ob += M;
    }
  }
  for (int i = 0; i < SIZE_A; i++) {
#pragma HLS PIPELINE II=1
    ca[i] += sa[i];
  }
}

// ------------------------------------------------------------------ sums

// out[o][i] = sum over r of in[o][r][i] (spikes count as 0/1).
template <int OUTER, int RED, int INNER, typename in_t, typename cur_t>
void reduce_sum(const in_t in[OUTER * RED * INNER], cur_t out[OUTER * INNER]) {
#pragma HLS INLINE
  clear<OUTER * INNER>(out);
  int ib = 0, ob = 0;
  for (int o = 0; o < OUTER; o++) {
    for (int r = 0; r < RED; r++) {
      for (int i = 0; i < INNER; i++) {
#pragma HLS PIPELINE II=1
        out[ob + i] += in[ib];
        ib++;
      }
    }
    ob += INNER;
  }
}

// Sum pooling over [C][PLANE_IN] (padding adds nothing); tables as in td_maxpool.
template <int C, int PLANE_IN, int PLANE_OUT, int OH, int OW, int KH, int KW,
          typename in_t, typename idx_t, typename cur_t>
void sum_pool(const in_t in[C * PLANE_IN], const idx_t row_from[OH][KH],
              const idx_t col_from[OW][KW], cur_t out[C * PLANE_OUT]) {
#pragma HLS INLINE
  int ib = 0, ob = 0;
  for (int c = 0; c < C; c++) {
    for (int oy = 0; oy < OH; oy++) {
      for (int ox = 0; ox < OW; ox++) {
#pragma HLS PIPELINE II=1
        cur_t s = 0;
        for (int ky = 0; ky < KH; ky++) {
          const int ro = row_from[oy][ky];
          if (ro < 0) continue;
          for (int kx = 0; kx < KW; kx++) {
            const int co = col_from[ox][kx];
            if (co >= 0) s += in[ib + ro + co];
          }
        }
        out[ob] = s;
        ob++;
      }
    }
    ib += PLANE_IN;
  }
}

// Residual stream: branch currents add.
template <int N, int UNROLL, typename a_t, typename b_t, typename cur_t>
void add(const a_t a[N], const b_t b[N], cur_t out[N]) {
#pragma HLS INLINE
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
    out[i] = a[i] + b[i];
  }
}

// ------------------------------------------------------------------ layout (rewiring)

// out[i] = in[from[i]]: a transpose, gather or broadcast, resolved by snncc into a table.
template <int N_OUT, int N_IN, typename T, typename idx_t>
void gather(const T in[N_IN], const idx_t from[N_OUT], T out[N_OUT]) {
#pragma HLS INLINE
  for (int i = 0; i < N_OUT; i++) {
#pragma HLS PIPELINE II=1
    out[i] = in[from[i]];
  }
}

// One operand of a concatenation: OUTER blocks of CHUNK_IN elements, placed at OFFSET
// within blocks of CHUNK_OUT.
template <int OUTER, int CHUNK_IN, int CHUNK_OUT, int OFFSET, typename T>
void concat_part(const T in[OUTER * CHUNK_IN], T out[OUTER * CHUNK_OUT]) {
#pragma HLS INLINE
  int ib = 0, ob = OFFSET;
  for (int o = 0; o < OUTER; o++) {
    for (int i = 0; i < CHUNK_IN; i++) {
#pragma HLS PIPELINE II=1
      out[ob + i] = in[ib];
      ib++;
    }
    ob += CHUNK_OUT;
  }
}

// ------------------------------------------------------------------ readout

// The readout integrates its input current.
template <int N, typename cur_t, typename acc_t>
void accumulate(const cur_t in[N], acc_t acc[N]) {
#pragma HLS INLINE
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
    acc[i] += in[i];
  }
}

// Integer logits = accumulated current + bias (their argmax is the prediction).
template <int N, typename acc_t, typename bias_t, typename logit_t>
void readout(const acc_t acc[N], const bias_t bias[N], logit_t logits[N]) {
#pragma HLS INLINE
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
    logits[i] = acc[i] + bias[i];
  }
}

// Copy a neuron layer's spike counts to its slice [OFFSET, OFFSET + N) of the output.
template <int N, int OFFSET, int TOTAL, typename cnt_t, typename count_t>
void export_counts(const cnt_t n[N], count_t counts[TOTAL]) {
#pragma HLS INLINE
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
    counts[OFFSET + i] = n[i];
  }
}

}  // namespace snn

#endif  // SNN_KERNELS_H_
