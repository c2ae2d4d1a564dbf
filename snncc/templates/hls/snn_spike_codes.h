// snn_spike_codes.h: the kernels for spikes that carry a sign or a number (snncc HLS
// backend), beside snn_kernels.h:
//
// - signed spikes (--neuron signed): a spike is +1 or -1 (a signed 0/+1/-1 value); a
//   synapse adds or subtracts the weight row, running counts go up and down;
// - weighted lines (--neuron multi, and the weighted input): a spike is a number e sent
//   as binary digits on LINES lines of weight 1, 2, 4, ...; for every set line b a
//   synapse adds its weight row shifted left by b.
//
// No kernel here multiplies: a set line selects a shifted row (shl: a shift of the
// two's-complement bits), a signed spike an addition or a subtraction, and a neuron
// compares its membrane with its threshold table. The per-step semantics are those of
// snncc's step engine (kernels.signed_steps, kernels.multi_steps), bit for bit.
#ifndef SNN_SPIKE_CODES_H_
#define SNN_SPIKE_CODES_H_

#include <cstdint>

#include "snn_kernels.h"

namespace snn {

// x << b, as T: the shift of x's two's-complement bits (well defined for negative x).
template <typename T, typename U>
inline T shl(U x, int b) {
#pragma HLS INLINE
  return static_cast<T>(static_cast<unsigned long long>(static_cast<long long>(x)) << b);
}

// Line b of a number sent on weighted lines: set or not.
template <typename T>
inline bool line(T e, int b) {
#pragma HLS INLINE
  return (static_cast<int>(e) >> b) & 1;
}

// Weighted input: code c (LO <= c) is sent once, at step 0, as the number c - LO.
template <int N, int LO, typename code_t, typename out_t>
void encode_weighted(const code_t codes[N], out_t out[N]) {
#pragma HLS INLINE
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
    out[i] = static_cast<out_t>(codes[i] - LO);
  }
}

// ------------------------------------------------------------------ synapses

// Dense layer on signed spikes: in [ROWS][K], w [K][M]. A +1 spike (r, k) adds the weight
// row w[k][:] to out[r][:], a -1 spike subtracts it.
template <int ROWS, int K, int M, int UNROLL, typename in_t, typename w_t, typename cur_t>
void dense_ternary(const in_t in[ROWS * K], const w_t w[K][M], cur_t out[ROWS * M]) {
#pragma HLS INLINE
  clear<ROWS * M>(out);
  int ib = 0, ob = 0;
  for (int r = 0; r < ROWS; r++) {
    for (int k = 0; k < K; k++) {
      const int s = in[ib];
      if (s > 0) {
        for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
          out[ob + m] += w[k][m];
        }
      } else if (s < 0) {
        for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
          out[ob + m] -= w[k][m];
        }
      }
      ib++;
    }
    ob += M;
  }
}

// Dense layer on weighted lines: in [ROWS][K] numbers, w [K][M]. For every set line b of
// the number (r, k), the weight row w[k][:] shifted left by b is added to out[r][:].
template <int ROWS, int K, int M, int LINES, int UNROLL, typename in_t, typename w_t,
          typename cur_t>
void dense_lines(const in_t in[ROWS * K], const w_t w[K][M], cur_t out[ROWS * M]) {
#pragma HLS INLINE
  clear<ROWS * M>(out);
  int ib = 0, ob = 0;
  for (int r = 0; r < ROWS; r++) {
    for (int k = 0; k < K; k++) {
      const in_t e = in[ib];
      for (int b = 0; b < LINES; b++) {
        if (line(e, b)) {
          for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
            out[ob + m] += shl<cur_t>(w[k][m], b);
          }
        }
      }
      ib++;
    }
    ob += M;
  }
}

// Convolution on signed spikes, event driven, as conv_spikes: a +1 spike at (c, y, x)
// adds the rows w[c][ky][kx][:] to the output pixels its taps reach, a -1 spike
// subtracts them.
template <int G, int CG, int H, int W, int OG, int PLANE, int KH, int KW, int UNROLL,
          typename in_t, typename w_t, typename idx_t, typename cur_t>
void conv_ternary(const in_t in[G * CG * H * W], const w_t w[G * CG][KH][KW][OG],
                  const idx_t row_to[H][KH], const idx_t col_to[W][KW],
                  cur_t out[G * OG * PLANE]) {
#pragma HLS INLINE
  clear<G * OG * PLANE>(out);
  int ib = 0, c = 0, gb = 0;
  for (int g = 0; g < G; g++) {
    for (int cg = 0; cg < CG; cg++) {
      for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
          const int s = in[ib];
          if (s != 0) {
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
                  if (s > 0) {
                    out[ob] += w[c][ky][kx][j];
                  } else {
                    out[ob] -= w[c][ky][kx][j];
                  }
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

// Convolution on weighted lines, event driven, as conv_spikes: for every set line b of
// the number at (c, y, x), the rows w[c][ky][kx][:] shifted left by b are added to the
// output pixels its taps reach.
template <int G, int CG, int H, int W, int OG, int PLANE, int KH, int KW, int LINES,
          int UNROLL, typename in_t, typename w_t, typename idx_t, typename cur_t>
void conv_lines(const in_t in[G * CG * H * W], const w_t w[G * CG][KH][KW][OG],
                const idx_t row_to[H][KH], const idx_t col_to[W][KW],
                cur_t out[G * OG * PLANE]) {
#pragma HLS INLINE
  clear<G * OG * PLANE>(out);
  int ib = 0, c = 0, gb = 0;
  for (int g = 0; g < G; g++) {
    for (int cg = 0; cg < CG; cg++) {
      for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
          const in_t e = in[ib];
          for (int b = 0; b < LINES; b++) {
            if (!line(e, b)) continue;
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
                  out[ob] += shl<cur_t>(w[c][ky][kx][j], b);
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

// Signed DIF neurons viewed as [OUTER][MID][INNER] (thresholds th [MID][LEVELS] and the
// sign table neg [MID] vary along MID; neg[m]: the neuron compares -v). Each step
// v += I(t); while `fire`, with n the net count so far:
//   +1 if n < LEVELS and sv >= th[n];  else -1 if n > 0 and sv < th[n - 1];  else 0,
// one spike per step; n follows it, and ends at the code.
template <int OUTER, int MID, int INNER, int LEVELS, int UNROLL, typename cur_t,
          typename mem_t, typename cnt_t, typename th_t, typename out_t>
void dif_ternary(const cur_t in[OUTER * MID * INNER], mem_t v[OUTER * MID * INNER],
                 cnt_t n[OUTER * MID * INNER], const th_t th[MID][LEVELS],
                 const bool neg[MID], bool fire, out_t out[OUTER * MID * INNER]) {
#pragma HLS INLINE
  int m = 0, k = 0;  // neuron i sits at [o][m][k]: UNROLL lanes may span several m
  for (int i = 0; i < OUTER * MID * INNER; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
    v[i] += in[i];
    const mem_t sv = neg[m] ? static_cast<mem_t>(-v[i]) : v[i];
    const int count = n[i];
    const int up = count < LEVELS ? count : LEVELS - 1;  // indices in range, also
    const int down = count > 0 ? count - 1 : 0;          // where they are not used
    int s = 0;
    if (fire && count < LEVELS && sv >= th[m][up]) {
      s = 1;
    } else if (fire && count > 0 && sv < th[m][down]) {
      s = -1;
    }
    n[i] = static_cast<cnt_t>(count + s);
    out[i] = static_cast<out_t>(s);
    if (++k == INNER) {
      k = 0;
      if (++m == MID) m = 0;
    }
  }
}

// Multi-threshold neurons viewed as [OUTER][MID][INNER] (tables as in dif_ternary). Each
// step v += I(t); while `fire`, a bank of LEVELS comparators counts the levels newly
// reached, e = #{k >= n : sv >= th[k]}; n += e, and e goes out as one number on weighted
// lines.
template <int OUTER, int MID, int INNER, int LEVELS, int UNROLL, typename cur_t,
          typename mem_t, typename cnt_t, typename th_t, typename out_t>
void dif_multi(const cur_t in[OUTER * MID * INNER], mem_t v[OUTER * MID * INNER],
               cnt_t n[OUTER * MID * INNER], const th_t th[MID][LEVELS],
               const bool neg[MID], bool fire, out_t out[OUTER * MID * INNER]) {
#pragma HLS INLINE
  int m = 0, k = 0;  // neuron i sits at [o][m][k]: UNROLL lanes may span several m
  for (int i = 0; i < OUTER * MID * INNER; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
    v[i] += in[i];
    const mem_t sv = neg[m] ? static_cast<mem_t>(-v[i]) : v[i];
    const int count = n[i];
    int e = 0;
    for (int l = 0; l < LEVELS; l++) {
#pragma HLS UNROLL
      if (fire && l >= count && sv >= th[m][l]) e++;
    }
    n[i] = static_cast<cnt_t>(count + e);
    out[i] = static_cast<out_t>(e);
    if (++k == INNER) {
      k = 0;
      if (++m == MID) m = 0;
    }
  }
}

// ------------------------------------------------------------------ temporal decomposition

// TD max pooling on signed spikes or weighted lines: C(t) += S(t);
// out(t) = maxpool(C(t)) - maxpool(C(t-1)), a signed spike or a number (each count moves
// by at most one step's value). Tables as in td_maxpool; counts are never negative.
template <int C, int PLANE_IN, int PLANE_OUT, int OH, int OW, int KH, int KW,
          typename in_t, typename cnt_t, typename idx_t, typename out_t>
void td_maxpool_codes(const in_t in[C * PLANE_IN], cnt_t count[C * PLANE_IN],
                      cnt_t last[C * PLANE_OUT], const idx_t row_from[OH][KH],
                      const idx_t col_from[OW][KW], out_t out[C * PLANE_OUT]) {
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
        out[ob] = static_cast<out_t>(m - last[ob]);
        last[ob] = m;
        ob++;
      }
    }
    ib += PLANE_IN;
  }
}

// TD product on signed spikes, as td_matmul: out(t) = C_A(t-1) S_B(t) + S_A(t) C_B(t),
// where a +1 spike adds the count it selects and a -1 spike subtracts it; the running
// counts follow the spikes up and down.
template <int NB, int N, int K, int M, int SIZE_A, int SIZE_B, int UNROLL, typename sa_t,
          typename sb_t, typename ca_t, typename cb_t, typename idx_t, typename cur_t>
void td_matmul_ternary(const sa_t sa[SIZE_A], const sb_t sb[SIZE_B], ca_t ca[SIZE_A],
                       cb_t cb[SIZE_B], const idx_t a_at[NB], const idx_t b_at[NB],
                       cur_t out[NB * N * M]) {
#pragma HLS INLINE
  clear<NB * N * M>(out);
  // B's spikes meet A's counts up to the previous step: out[n][m] +-= ca[n][k].
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
          const int s = sb[br + m];
          if (s > 0) {
            out[ob + m] += a;
          } else if (s < 0) {
            out[ob + m] -= a;
          }
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
  // A's spikes meet B's counts up to this step: out[n][:] +-= cb[k][:].
  ob = 0;
  for (int b = 0; b < NB; b++) {
    int ar = a_at[b];
    for (int n = 0; n < N; n++) {
      int br = b_at[b];
      for (int k = 0; k < K; k++) {
        const int s = sa[ar + k];
        if (s > 0) {
          for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
            out[ob + m] += cb[br + m];
          }
        } else if (s < 0) {
          for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
            out[ob + m] -= cb[br + m];
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

// TD product on weighted lines, as td_matmul: out(t) = C_A(t-1) S_B(t) + S_A(t) C_B(t),
// where S is a number (on LINES_A, LINES_B lines): for every set line l of it, the count
// it selects, shifted left by l, is added.
template <int NB, int N, int K, int M, int SIZE_A, int SIZE_B, int LINES_A, int LINES_B,
          int UNROLL,
          typename sa_t, typename sb_t, typename ca_t, typename cb_t, typename idx_t,
          typename cur_t>
void td_matmul_lines(const sa_t sa[SIZE_A], const sb_t sb[SIZE_B], ca_t ca[SIZE_A],
                     cb_t cb[SIZE_B], const idx_t a_at[NB], const idx_t b_at[NB],
                     cur_t out[NB * N * M]) {
#pragma HLS INLINE
  clear<NB * N * M>(out);
  // B's numbers meet A's counts up to the previous step: out[n][m] += ca[n][k] << l for
  // every set line l of sb[k][m].
  int ob = 0;
  for (int b = 0; b < NB; b++) {
    int ar = a_at[b];
    for (int n = 0; n < N; n++) {
      int br = b_at[b];
      for (int k = 0; k < K; k++) {
        const ca_t a = ca[ar + k];
        for (int l = 0; l < LINES_B; l++) {
          const cur_t shifted = shl<cur_t>(a, l);
          for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
            if (line(sb[br + m], l)) out[ob + m] += shifted;
          }
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
  // A's numbers meet B's counts up to this step: out[n][:] += cb[k][:] << l for every
  // set line l of sa[n][k].
  ob = 0;
  for (int b = 0; b < NB; b++) {
    int ar = a_at[b];
    for (int n = 0; n < N; n++) {
      int br = b_at[b];
      for (int k = 0; k < K; k++) {
        const sa_t e = sa[ar + k];
        for (int l = 0; l < LINES_A; l++) {
          if (!line(e, l)) continue;
          for (int m = 0; m < M; m++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=UNROLL
            out[ob + m] += shl<cur_t>(cb[br + m], l);
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

}  // namespace snn

#endif  // SNN_SPIKE_CODES_H_
