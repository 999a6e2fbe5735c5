/*
 * breccia-torch's optional fused CPU kernel (built and loaded by _cpu_kernel.py on first use).
 *
 * Why it exists: an eager torch cast pays one full memory pass per operation (|x|, block max, division, clamp,
 * conversion), so it cannot get near a bare `.to(float8)`. These two loops do the memory-bound parts in one
 * pass each, while the recipe math (scales) stays written once in breccia/_math.py.
 *
 * Both primitives are exact by construction, so they give the shared reference's bytes:
 *   - breccia_absmax_blocks: max |x| per block as the max of the bit patterns with the sign cleared (integer order
 *     is float order for non-negative IEEE values, so this is the float max, exactly); it reports whether any
 *     pattern is NaN/Inf (>= 0x7F800000) so the caller can fall back to the general path.
 *   - breccia_encode_blocks: v = clamp(x / s, +-fmax) (one correctly rounded IEEE division, or x * s for a
 *     multiplier grid), then round-to-nearest-even to the element format by the same FPU rounding step as
 *     breccia._math.round_to_grid (|v| + c, with c a power of two whose ulp is the target's step); the code is read
 *     off the sum's bits with integer arithmetic. The only possible fp32 subnormal is v itself, which every target
 *     rounds to a signed zero, so flush-to-zero could not change a code either.
 *
 * Build flags must keep IEEE semantics: -O3 -fno-fast-math -ffp-contract=off (nothing may be reassociated or
 * contracted into an FMA). The loops are written branch-free (selects, restrict) so the compiler vectorizes them;
 * _cpu_kernel.py checks every fresh build against the shared encoder before using it.
 */
#include <stdint.h>
#include <string.h>

#define BRECCIA_ABI 1

#define INLINE static inline __attribute__((always_inline))

int64_t breccia_abi(void) { return BRECCIA_ABI; }

INLINE uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

INLINE float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Max |x| per block of b elements along each of `rows` rows (row i at x + i*ld, k elements, the last block of a
 * row may be partial). out: rows x ceil(k/b) fp32 bit patterns, row-major. Returns 1 if any |x| is NaN or Inf. */
int breccia_absmax_blocks(const uint32_t *restrict x, int64_t rows, int64_t k, int64_t ld, int64_t b,
                          uint32_t *restrict out) {
    const int64_t nb = (k + b - 1) / b;
    uint32_t top = 0;
    for (int64_t r = 0; r < rows; r++) {
        const uint32_t *restrict row = x + r * ld;
        uint32_t *restrict o = out + r * nb;
        for (int64_t j = 0; j < nb; j++) {
            const uint32_t *restrict blk = row + j * b;
            const int64_t n = k - j * b < b ? k - j * b : b;
            uint32_t m = 0;
            for (int64_t i = 0; i < n; i++) {
                const uint32_t a = blk[i] & 0x7FFFFFFFu;
                m = a > m ? a : m;
            }
            o[j] = m;
            top = m > top ? m : top;
        }
    }
    return top >= 0x7F800000u;
}

/* The code of one element given its scale s. E/M/BIAS/FMAX are compile-time constants at every call site.
 *
 * The clamp is on the magnitude's bit pattern (integer order is float order for non-negative floats, and +Inf
 * clamps to fmax like any overflow). Rounding is the FPU's own: with e = max(exponent of |v|, the target's smallest
 * normal exponent) and c = 2^(e + 23 - M), the sum t = |v| + c lies in [c, 2c), where the fp32 ulp is exactly the
 * target's step at |v|, so t's mantissa field m is |v| in steps, rounded to nearest-even (the code's last bit is
 * m's last bit). The code is then ((e - emin) << M) + m: this covers normal and subnormal targets alike, and a
 * round-up into the next binade (m = 2^(M+1)) carries into the exponent field by itself. */
INLINE uint32_t encode_one(float x, float s, const int MUL, const int E, const int M, const int BIAS,
                           const float FMAX) {
    const uint32_t lo = (uint32_t)(128 - BIAS) << 23; /* fp32 exponent field of the target's smallest normal */
    const uint32_t step = (uint32_t)(23 - M) << 23;   /* c = 2^(e + 23 - M) */
    const float v = MUL ? x * s : x / s;
    const uint32_t bx = f2u(v);
    uint32_t a = bx & 0x7FFFFFFFu;
    a = a < f2u(FMAX) ? a : f2u(FMAX);
    uint32_t e = a & 0x7F800000u;
    e = e > lo ? e : lo;
    const uint32_t cb = e + step;
    const uint32_t m = f2u(u2f(a) + u2f(cb)) - cb;
    const uint32_t code = ((e - lo) >> (23 - M)) + m;
    return code | ((bx >> 31) << (E + M));
}

/* Codes of n elements sharing one scale s, as 32-bit words: with every access 32 bits wide the loop vectorizes at
 * the float width (16 lanes of AVX-512), so a 16-element block (NVFP4) takes one vector step. */
INLINE void encode_span(const float *restrict x, int64_t n, float s, uint32_t *restrict out, const int MUL,
                        const int E, const int M, const int BIAS, const float FMAX) {
    for (int64_t i = 0; i < n; i++) {
        out[i] = encode_one(x[i], s, MUL, E, M, BIAS, FMAX);
    }
}

#define SEG 1024 /* codes of a row segment go through a stack buffer (L1-resident), then out as bytes */

INLINE void encode_rows(const float *restrict x, int64_t rows, int64_t k, int64_t ld, int64_t b,
                        const float *restrict scale, int64_t s_ld, uint8_t *restrict out, int64_t o_ld,
                        const int MUL, const int E, const int M, const int BIAS, const float FMAX, const int PACK) {
    uint32_t tmp[SEG];
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict xr = x + r * ld;
        const float *restrict sr = scale + r * s_ld;
        uint8_t *restrict orow = out + r * o_ld;
        for (int64_t s0 = 0; s0 < k; s0 += SEG) {
            const int64_t end = k - s0 < SEG ? k : s0 + SEG;
            for (int64_t i = s0; i < end;) {
                const int64_t j = i / b;
                const int64_t e = (j + 1) * b < end ? (j + 1) * b : end;
                encode_span(xr + i, e - i, sr[j], tmp + (i - s0), MUL, E, M, BIAS, FMAX);
                i = e;
            }
            const int64_t n = end - s0;
            if (!PACK) {
                uint8_t *restrict o = orow + s0;
                for (int64_t p = 0; p < n; p++) {
                    o[p] = (uint8_t)tmp[p];
                }
                continue;
            }
            uint8_t *restrict o = orow + s0 / 2;
            for (int64_t p = 0; p < n / 2; p++) {
                o[p] = (uint8_t)(tmp[2 * p] | (tmp[2 * p + 1] << 4)); /* element 2i in the low nibble */
            }
            if (n % 2) {
                o[n / 2] = (uint8_t)tmp[n - 1];
            }
        }
    }
}
/* Encode `rows` rows of k fp32 elements (row i at x + i*ld) with one scale per block of b along the row (the scale
 * of block j of row i at scale[i*s_ld + j]; s_ld = 0 repeats one row of scales). mode 0 divides by the scale, mode 1
 * multiplies by it. fmt: 0 E4M3, 1 E5M2, 2 E2M1 (packed two per byte, row stride o_ld bytes), 3 E2M3, 4 E3M2.
 * Returns 0, or -1 for an unknown fmt/mode. */
int breccia_encode_blocks(const float *restrict x, int64_t rows, int64_t k, int64_t ld, int64_t b,
                          const float *restrict scale, int64_t s_ld, int32_t mode, int32_t fmt,
                          uint8_t *restrict out, int64_t o_ld) {
#define CASE(F, MODE, E, M, BIAS, FMAX, PACK)                                                          \
    case (F) * 2 + (MODE):                                                                              \
        encode_rows(x, rows, k, ld, b, scale, s_ld, out, o_ld, MODE, E, M, BIAS, FMAX, PACK);           \
        return 0;
    if (mode != 0 && mode != 1) {
        return -1;
    }
    switch (fmt * 2 + mode) {
        CASE(0, 0, 4, 3, 7, 448.0f, 0)
        CASE(0, 1, 4, 3, 7, 448.0f, 0)
        CASE(1, 0, 5, 2, 15, 57344.0f, 0)
        CASE(1, 1, 5, 2, 15, 57344.0f, 0)
        CASE(2, 0, 2, 1, 1, 6.0f, 1)
        CASE(2, 1, 2, 1, 1, 6.0f, 1)
        CASE(3, 0, 2, 3, 1, 7.5f, 0)
        CASE(3, 1, 2, 3, 1, 7.5f, 0)
        CASE(4, 0, 3, 2, 3, 28.0f, 0)
        CASE(4, 1, 3, 2, 3, 28.0f, 0)
    default:
        return -1;
    }
#undef CASE
}
