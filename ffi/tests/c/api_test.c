/*
 * Exercises every function of bitnet.h, including the error paths: NULL
 * everywhere, a bad path, non-GGUF bytes, wrong buffer sizes, use after
 * reset, re-entrant calls, a broken model refused by strict validation, and
 * a panic injected inside the boundary.
 *
 * Usage: api_test [MODEL.gguf]   (default tests/models/shakespeare-i2s.gguf)
 * Built and run (plain, Valgrind, ASAN) by `cargo xtask c-tests`, against a
 * library built with the `test-panic` feature. Prints "N passed, N failed".
 */
/* setenv / unsetenv (POSIX) for the BITNET_STRICT test. */
#define _POSIX_C_SOURCE 200809L

#include "bitnet.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Only in `test-panic` builds; deliberately not in bitnet.h. */
bitnet_status bitnet_test_panic(void);

static int passed, failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            passed++;                                                            \
        } else {                                                                 \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_STATUS(expr, want)                                                 \
    do {                                                                         \
        bitnet_status got_ = (expr);                                             \
        if (got_ == (want)) {                                                    \
            passed++;                                                            \
        } else {                                                                 \
            char msg_[512];                                                      \
            bitnet_last_error(msg_, sizeof msg_);                                \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: %s returned %u (%s), want %s; last error: %s\n", \
                    __FILE__, __LINE__, #expr, (unsigned)got_, bitnet_status_str(got_), \
                    #want, msg_);                                                \
        }                                                                        \
    } while (0)

static const char *model_path;

/* The last error message contains `needle`. */
static int last_error_has(const char *needle) {
    char msg[1024];
    bitnet_last_error(msg, sizeof msg);
    return strstr(msg, needle) != NULL;
}

static void test_version_and_status(void) {
    CHECK(bitnet_abi_version() == BITNET_ABI_VERSION);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", BITNET_VERSION_MAJOR, BITNET_VERSION_MINOR,
             BITNET_VERSION_PATCH);
    CHECK(strcmp(bitnet_version(), want) == 0);

    const bitnet_status all[] = {
        BITNET_STATUS_OK,          BITNET_STATUS_NULL_ARG,      BITNET_STATUS_INVALID_ARG,
        BITNET_STATUS_BUFFER_TOO_SMALL, BITNET_STATUS_UTF8,      BITNET_STATUS_IO,
        BITNET_STATUS_PANIC,       BITNET_STATUS_CANCELLED,     BITNET_STATUS_KERNEL_UNAVAILABLE,
        BITNET_STATUS_NO_TOKENIZER, BITNET_STATUS_INVALID_STATE, BITNET_STATUS_BUSY,
        BITNET_STATUS_RECEIPT,     BITNET_STATUS_VALIDATION,    BITNET_STATUS_GGUF,
        BITNET_STATUS_TOKENIZER,   BITNET_STATUS_MODEL,         BITNET_STATUS_QUANT,
        BITNET_STATUS_SAMPLE,
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = bitnet_status_str(all[i]);
        CHECK(s != NULL && strcmp(s, "unknown status") != 0);
    }
    CHECK(strcmp(bitnet_status_str(12345), "unknown status") == 0);
    CHECK(strcmp(bitnet_status_str(BITNET_STATUS_OK), "ok") == 0);
}

static void test_last_error(void) {
    bitnet_model *m = (bitnet_model *)0x1;
    CHECK_STATUS(bitnet_model_load(NULL, bitnet_model_default_params(), &m), BITNET_STATUS_NULL_ARG);
    CHECK(m == (bitnet_model *)0x1); /* outputs untouched on failure */
    size_t n = bitnet_last_error(NULL, 0);
    CHECK(n > 0);
    char *full = malloc(n + 1);
    CHECK(bitnet_last_error(full, n + 1) == n);
    CHECK(strlen(full) == n);
    CHECK(strstr(full, "path is NULL") != NULL);
    /* snprintf-style truncation. */
    char small[5] = "xxxx";
    CHECK(bitnet_last_error(small, sizeof small) == n);
    CHECK(strlen(small) == 4 && memcmp(small, full, 4) == 0);
    char one[1] = {'x'};
    CHECK(bitnet_last_error(one, 1) == n && one[0] == '\0');
    /* A successful call does not clear it. */
    CHECK(bitnet_abi_version() == BITNET_ABI_VERSION);
    CHECK(bitnet_last_error(NULL, 0) == n);
    free(full);
}

static int progress_calls;
static float progress_last;
static int progress_monotonic = 1;

static bool on_progress(float p, void *user_data) {
    int cancel_at = *(int *)user_data;
    if (p < progress_last) progress_monotonic = 0;
    progress_last = p;
    progress_calls++;
    return cancel_at < 0 || progress_calls < cancel_at;
}

static void test_load_errors(void) {
    bitnet_model_params p = bitnet_model_default_params();
    bitnet_model *m = NULL;
    CHECK_STATUS(bitnet_model_load(model_path, p, NULL), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_load("/nonexistent/dir/model.gguf", p, &m), BITNET_STATUS_IO);
    CHECK(m == NULL);
    CHECK(last_error_has("/nonexistent/dir/model.gguf"));
    /* Not a GGUF file: this source's own executable is not one. */
    CHECK_STATUS(bitnet_model_load("/proc/self/exe", p, &m), BITNET_STATUS_GGUF);
    CHECK(m == NULL);
    p.use_mmap = false;
    CHECK_STATUS(bitnet_model_load("/nonexistent", p, &m), BITNET_STATUS_IO);
    p = bitnet_model_default_params();
    p.kernel = 99;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_INVALID_ARG);
    CHECK(m == NULL);

    /* Progress reaches 1.0 monotonically; returning false cancels. */
    int never = -1;
    p = bitnet_model_default_params();
    p.progress_callback = on_progress;
    p.progress_callback_user_data = &never;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_OK);
    CHECK(progress_calls >= 2 && progress_last == 1.0f && progress_monotonic);
    bitnet_model_free(m);
    m = NULL;
    int second = 2;
    progress_calls = 0;
    progress_last = 0;
    p.progress_callback_user_data = &second;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_CANCELLED);
    CHECK(m == NULL && progress_calls == 2);

    /* From memory: NULL, garbage, truncated. */
    const char garbage[64] = "definitely not a gguf file";
    CHECK_STATUS(bitnet_model_load_from_memory(NULL, 10, bitnet_model_default_params(), &m),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_load_from_memory(garbage, sizeof garbage,
                                               bitnet_model_default_params(), NULL),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_load_from_memory(garbage, sizeof garbage,
                                               bitnet_model_default_params(), &m),
                 BITNET_STATUS_GGUF);
    CHECK(m == NULL);

    bitnet_model_free(NULL); /* no-op */
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The getters that copy item `index` of a model's list (metadata keys,
 * validation findings) into a caller buffer. */
typedef bitnet_status (*indexed_getter)(const bitnet_model *, size_t, char *, size_t, size_t *);

/* Whether one of items 0..count of `get` contains `needle`; checks the size
 * query and the copy of every item on the way. */
static int some_item_has(indexed_getter get, const bitnet_model *m, size_t count,
                         const char *needle) {
    int found = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len = 0;
        CHECK_STATUS(get(m, i, NULL, 0, &len), BITNET_STATUS_BUFFER_TOO_SMALL);
        char *item = malloc(len + 1);
        size_t len2 = 0;
        CHECK_STATUS(get(m, i, item, len + 1, &len2), BITNET_STATUS_OK);
        CHECK(len2 == len && strlen(item) == len);
        if (strstr(item, needle)) found = 1;
        free(item);
    }
    return found;
}

static void test_getters(const bitnet_model *m) {
    CHECK(bitnet_model_n_vocab(m) > 0);
    CHECK(bitnet_model_n_ctx_train(m) > 0);
    CHECK(bitnet_model_n_embd(m) > 0);
    CHECK(bitnet_model_n_layer(m) > 0);
    const char *arch = bitnet_model_arch(m);
    CHECK(arch != NULL &&
          (!strcmp(arch, "llama") || !strcmp(arch, "bitnet") || !strcmp(arch, "bitnet-b1.58")));
    CHECK(bitnet_model_n_vocab(NULL) == 0);
    CHECK(bitnet_model_n_ctx_train(NULL) == 0);
    CHECK(bitnet_model_n_embd(NULL) == 0);
    CHECK(bitnet_model_n_layer(NULL) == 0);
    CHECK(bitnet_model_arch(NULL) == NULL);
    CHECK(last_error_has("model is NULL"));

    bitnet_token bos = bitnet_model_token_bos(m), eos = bitnet_model_token_eos(m);
    CHECK(bos != BITNET_TOKEN_NULL && eos != BITNET_TOKEN_NULL && bos != eos);
    CHECK(bitnet_model_token_is_eog(m, eos));
    CHECK(!bitnet_model_token_is_eog(m, bos));
    CHECK(bitnet_model_token_bos(NULL) == BITNET_TOKEN_NULL);
    CHECK(bitnet_model_token_eos(NULL) == BITNET_TOKEN_NULL);
    CHECK(!bitnet_model_token_is_eog(NULL, eos));

    /* Metadata. */
    size_t count = bitnet_model_meta_count(m);
    CHECK(count > 0);
    CHECK(bitnet_model_meta_count(NULL) == 0);
    CHECK(some_item_has(bitnet_model_meta_key_by_index, m, count, "general.architecture"));
    char val[256];
    size_t len = 0;
    CHECK_STATUS(bitnet_model_meta_val_str(m, "general.architecture", val, sizeof val, &len),
                 BITNET_STATUS_OK);
    CHECK(!strcmp(val, arch) && len == strlen(arch));
    /* Too small by one (no room for the NUL): untouched buffer, size out. */
    memset(val, 'z', sizeof val);
    size_t need = 0;
    CHECK_STATUS(bitnet_model_meta_val_str(m, "general.architecture", val, strlen(arch), &need),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(need == strlen(arch) && val[0] == 'z');
    CHECK_STATUS(bitnet_model_meta_val_str(m, "tokenizer.ggml.tokens", val, sizeof val, &len),
                 BITNET_STATUS_OK);
    CHECK(!strncmp(val, "array[string; ", 14));
    CHECK_STATUS(bitnet_model_meta_val_str(m, "no.such.key", val, sizeof val, &len),
                 BITNET_STATUS_INVALID_ARG);
    CHECK_STATUS(bitnet_model_meta_val_str(m, "\xff\xfe", val, sizeof val, &len),
                 BITNET_STATUS_UTF8);
    CHECK_STATUS(bitnet_model_meta_val_str(m, NULL, val, sizeof val, &len),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_meta_val_str(NULL, "general.architecture", val, sizeof val, &len),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_meta_val_str(m, "general.architecture", val, sizeof val, NULL),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_meta_val_str(m, "general.architecture", NULL, 10, &len),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_meta_key_by_index(m, count, val, sizeof val, &len),
                 BITNET_STATUS_INVALID_ARG);
    CHECK_STATUS(bitnet_model_meta_key_by_index(NULL, 0, val, sizeof val, &len),
                 BITNET_STATUS_NULL_ARG);
}

static const char *TEXT = "Once upon a time, there was a little dog.";

static void test_tokenizer(const bitnet_model *m) {
    size_t n = 0;
    /* Size query. */
    CHECK_STATUS(bitnet_tokenize(m, TEXT, strlen(TEXT), true, false, NULL, 0, &n),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(n > 2);
    bitnet_token *toks = malloc(n * sizeof *toks);
    /* One too small: untouched. */
    for (size_t i = 0; i < n; i++) toks[i] = 777;
    size_t n2 = 0;
    CHECK_STATUS(bitnet_tokenize(m, TEXT, strlen(TEXT), true, false, toks, n - 1, &n2),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(n2 == n && toks[0] == 777);
    CHECK_STATUS(bitnet_tokenize(m, TEXT, strlen(TEXT), true, false, toks, n, &n2),
                 BITNET_STATUS_OK);
    CHECK(n2 == n && toks[0] == bitnet_model_token_bos(m));
    /* Without special tokens: one fewer (no BOS). */
    size_t n3 = 0;
    CHECK_STATUS(bitnet_tokenize(m, TEXT, strlen(TEXT), false, false, NULL, 0, &n3),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(n3 == n - 1);
    /* Empty text: NULL allowed with length 0. */
    bitnet_token one[4];
    CHECK_STATUS(bitnet_tokenize(m, NULL, 0, true, false, one, 4, &n3), BITNET_STATUS_OK);
    CHECK(n3 == 1 && one[0] == bitnet_model_token_bos(m));
    /* Errors. */
    CHECK_STATUS(bitnet_tokenize(NULL, TEXT, 4, true, false, one, 4, &n3), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_tokenize(m, NULL, 4, true, false, one, 4, &n3), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_tokenize(m, TEXT, 4, true, false, NULL, 4, &n3), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_tokenize(m, TEXT, 4, true, false, one, 4, NULL), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_tokenize(m, "ab\xff", 3, true, false, one, 4, &n3), BITNET_STATUS_UTF8);

    /* Pieces concatenate to the detokenized text. */
    char text[512];
    size_t tlen = 0, pos = 0;
    char joined[512];
    for (size_t i = 0; i < n; i++) {
        size_t plen = 0;
        CHECK_STATUS(bitnet_token_to_piece(m, toks[i], false, joined + pos, sizeof joined - pos,
                                           &plen),
                     BITNET_STATUS_OK);
        pos += plen;
    }
    CHECK_STATUS(bitnet_detokenize(m, toks, n, false, false, text, sizeof text, &tlen),
                 BITNET_STATUS_OK);
    CHECK(tlen == pos && memcmp(text, joined, tlen) == 0);
    /* Round trip (SentencePiece adds a space prefix; strip it). */
    CHECK_STATUS(bitnet_detokenize(m, toks, n, false, true, text, sizeof text, &tlen),
                 BITNET_STATUS_OK);
    CHECK(tlen == strlen(TEXT) && memcmp(text, TEXT, tlen) == 0);
    /* Size query and short buffers leave the buffer alone. */
    size_t need = 0;
    CHECK_STATUS(bitnet_detokenize(m, toks, n, false, true, NULL, 0, &need),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(need == tlen);
    memset(text, 'q', sizeof text);
    CHECK_STATUS(bitnet_detokenize(m, toks, n, false, true, text, need - 1, &need),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(text[0] == 'q');
    /* Special tokens render only when asked. */
    size_t plen = 99;
    CHECK_STATUS(bitnet_token_to_piece(m, bitnet_model_token_bos(m), false, NULL, 0, &plen),
                 BITNET_STATUS_OK);
    CHECK(plen == 0);
    CHECK_STATUS(bitnet_token_to_piece(m, bitnet_model_token_bos(m), true, NULL, 0, &plen),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(plen > 0);
    CHECK_STATUS(bitnet_token_to_piece(m, toks[1], false, text, 0, &plen),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(bitnet_token_to_piece(m, (bitnet_token)bitnet_model_n_vocab(m), false, text,
                                       sizeof text, &plen),
                 BITNET_STATUS_TOKENIZER);
    CHECK_STATUS(bitnet_token_to_piece(NULL, 1, false, text, sizeof text, &plen),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_token_to_piece(m, 1, false, NULL, 8, &plen), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_token_to_piece(m, 1, false, text, sizeof text, NULL),
                 BITNET_STATUS_NULL_ARG);
    bitnet_token bad = (bitnet_token)bitnet_model_n_vocab(m);
    CHECK_STATUS(bitnet_detokenize(m, &bad, 1, false, false, text, sizeof text, &tlen),
                 BITNET_STATUS_TOKENIZER);
    CHECK_STATUS(bitnet_detokenize(m, NULL, 1, false, false, text, sizeof text, &tlen),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_detokenize(m, NULL, 0, false, false, NULL, 0, &tlen), BITNET_STATUS_OK);
    CHECK(tlen == 0);
    CHECK_STATUS(bitnet_detokenize(NULL, toks, n, false, false, text, sizeof text, &tlen),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_detokenize(m, toks, n, false, false, text, sizeof text, NULL),
                 BITNET_STATUS_NULL_ARG);
    free(toks);
}

static size_t argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct {
    bitnet_token toks[256];
    size_t n;
    size_t stop_after; /* 0: never stop */
    bitnet_session *reenter; /* call back into this session */
    bitnet_status reenter_status;
} collect_t;

static bool collect(bitnet_token t, const char *piece, size_t len, void *user_data) {
    collect_t *c = user_data;
    (void)piece;
    (void)len;
    if (c->n < 256) c->toks[c->n] = t;
    c->n++;
    if (c->reenter) {
        bitnet_token x = 1;
        c->reenter_status = bitnet_session_eval(c->reenter, &x, 1);
    }
    return c->stop_after == 0 || c->n < c->stop_after;
}

static void test_session(const bitnet_model *m) {
    bitnet_session_params sp = bitnet_session_default_params();
    bitnet_session *s = NULL;
    CHECK_STATUS(bitnet_session_new(NULL, sp, &s), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_session_new(m, sp, NULL), BITNET_STATUS_NULL_ARG);
    sp.n_batch = 0;
    CHECK_STATUS(bitnet_session_new(m, sp, &s), BITNET_STATUS_INVALID_ARG);
    sp = bitnet_session_default_params();
    sp.n_ctx = (uint32_t)bitnet_model_n_ctx_train(m) + 1;
    CHECK_STATUS(bitnet_session_new(m, sp, &s), BITNET_STATUS_MODEL);
    CHECK(s == NULL);
    sp = bitnet_session_default_params();
    sp.n_threads = 1;
    sp.n_batch = 4; /* the prompt is split into several forward steps */
    CHECK_STATUS(bitnet_session_new(m, sp, &s), BITNET_STATUS_OK);
    CHECK(bitnet_session_n_ctx(s) == bitnet_model_n_ctx_train(m));
    CHECK(bitnet_session_n_past(s) == 0);
    CHECK(bitnet_session_n_ctx(NULL) == 0 && bitnet_session_n_past(NULL) == 0);

    const float *logits = NULL;
    size_t nl = 0;
    CHECK_STATUS(bitnet_session_logits(s, &logits, &nl), BITNET_STATUS_INVALID_STATE);
    CHECK(logits == NULL && nl == 0);

    bitnet_token prompt[64];
    size_t np = 0;
    CHECK_STATUS(bitnet_tokenize(m, TEXT, strlen(TEXT), true, false, prompt, 64, &np),
                 BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_session_eval(NULL, prompt, np), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_session_eval(s, NULL, np), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_session_eval(s, prompt, 0), BITNET_STATUS_INVALID_ARG);
    bitnet_token bad = (bitnet_token)bitnet_model_n_vocab(m);
    CHECK_STATUS(bitnet_session_eval(s, &bad, 1), BITNET_STATUS_MODEL);
    CHECK(bitnet_session_n_past(s) == 0);
    CHECK_STATUS(bitnet_session_eval(s, prompt, np), BITNET_STATUS_OK);
    CHECK(bitnet_session_n_past(s) == np);
    CHECK_STATUS(bitnet_session_logits(s, &logits, NULL), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_session_logits(s, NULL, &nl), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_session_logits(NULL, &logits, &nl), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_session_logits(s, &logits, &nl), BITNET_STATUS_OK);
    CHECK(logits != NULL && nl == bitnet_model_n_vocab(m));
    size_t best = argmax(logits, nl);

    /* Reset: back to position 0, no logits (use after reset). */
    CHECK_STATUS(bitnet_session_reset(s), BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_session_reset(NULL), BITNET_STATUS_NULL_ARG);
    CHECK(bitnet_session_n_past(s) == 0);
    CHECK_STATUS(bitnet_session_logits(s, &logits, &nl), BITNET_STATUS_INVALID_STATE);
    bitnet_sampler_params gp = bitnet_sampler_greedy_params();
    CHECK_STATUS(bitnet_generate(s, NULL, 0, gp, NULL, NULL, NULL), BITNET_STATUS_INVALID_STATE);

    /* Greedy generation: its first token is the argmax of the prompt's logits. */
    collect_t c = {0};
    size_t ngen = 0;
    gp.max_tokens = 20;
    gp.stop_at_eog = false;
    CHECK_STATUS(bitnet_generate(s, prompt, np, gp, collect, &c, &ngen), BITNET_STATUS_OK);
    CHECK(ngen == 20 && c.n == 20 && c.toks[0] == best);
    /* The last token is not evaluated. */
    CHECK(bitnet_session_n_past(s) == np + 19);

    /* Continue: the last token as the next prompt; same as one long run. */
    collect_t c2 = {0};
    gp.max_tokens = 5;
    CHECK_STATUS(bitnet_generate(s, &c.toks[19], 1, gp, collect, &c2, &ngen), BITNET_STATUS_OK);
    CHECK(ngen == 5);
    collect_t whole = {0};
    gp.max_tokens = 25;
    CHECK_STATUS(bitnet_session_reset(s), BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_generate(s, prompt, np, gp, collect, &whole, NULL), BITNET_STATUS_OK);
    CHECK(whole.n == 25 && memcmp(whole.toks, c.toks, 20 * sizeof(bitnet_token)) == 0 &&
          memcmp(whole.toks + 20, c2.toks, 5 * sizeof(bitnet_token)) == 0);

    /* The callback stops generation. */
    CHECK_STATUS(bitnet_session_reset(s), BITNET_STATUS_OK);
    collect_t stop = {0};
    stop.stop_after = 3;
    gp.max_tokens = 50;
    CHECK_STATUS(bitnet_generate(s, prompt, np, gp, collect, &stop, &ngen), BITNET_STATUS_OK);
    CHECK(ngen == 3 && stop.n == 3);

    /* Calling into the session from its own callback: BUSY, not UB. */
    CHECK_STATUS(bitnet_session_reset(s), BITNET_STATUS_OK);
    collect_t re = {0};
    re.stop_after = 1;
    re.reenter = s;
    CHECK_STATUS(bitnet_generate(s, prompt, np, gp, collect, &re, NULL), BITNET_STATUS_OK);
    CHECK(re.reenter_status == BITNET_STATUS_BUSY);

    /* Sampling: equal seeds give equal tokens; stop at EOS works. */
    bitnet_sampler_params rp = bitnet_sampler_default_params();
    rp.seed = 1234;
    rp.max_tokens = 30;
    collect_t r1 = {0}, r2 = {0};
    CHECK_STATUS(bitnet_session_reset(s), BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_generate(s, prompt, np, rp, collect, &r1, NULL), BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_session_reset(s), BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_generate(s, prompt, np, rp, collect, &r2, NULL), BITNET_STATUS_OK);
    CHECK(r1.n == r2.n && r1.n > 0 && memcmp(r1.toks, r2.toks, r1.n * sizeof(bitnet_token)) == 0);
    for (size_t i = 0; i < r1.n; i++) CHECK(!bitnet_model_token_is_eog(m, r1.toks[i]));

    /* Bad parameters. */
    rp.temperature = 0.0f / 0.0f;
    CHECK_STATUS(bitnet_generate(s, prompt, np, rp, NULL, NULL, NULL), BITNET_STATUS_INVALID_ARG);
    CHECK_STATUS(bitnet_generate(NULL, prompt, np, gp, NULL, NULL, NULL), BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_generate(s, NULL, 3, gp, NULL, NULL, NULL), BITNET_STATUS_NULL_ARG);
    bitnet_session_free(s);

    /* A full context: eval refuses, generate stops with MODEL. */
    sp = bitnet_session_default_params();
    sp.n_ctx = 8;
    sp.n_threads = 2; /* also exercise the worker pool */
    CHECK_STATUS(bitnet_session_new(m, sp, &s), BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_session_eval(s, prompt, 9 <= np ? 9 : np), np >= 9 ? BITNET_STATUS_MODEL
                                                                          : BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_session_reset(s), BITNET_STATUS_OK);
    collect_t full = {0};
    gp.max_tokens = 20;
    CHECK_STATUS(bitnet_generate(s, prompt, 4, gp, collect, &full, &ngen), BITNET_STATUS_MODEL);
    CHECK(full.n == 5 && last_error_has("context full"));
    bitnet_session_free(s);
    bitnet_session_free(NULL); /* no-op */
}

/* Greedy tokens of `prompt` (n_gen of them) with a model loaded under `lm_head`. */
static size_t greedy_run(const bitnet_model *m, const bitnet_token *prompt, size_t np,
                         size_t n_gen, collect_t *out) {
    bitnet_session_params sp = bitnet_session_default_params();
    sp.n_threads = 1;
    bitnet_session *s = NULL;
    CHECK_STATUS(bitnet_session_new(m, sp, &s), BITNET_STATUS_OK);
    if (!s) return 0;
    bitnet_sampler_params gp = bitnet_sampler_greedy_params();
    gp.max_tokens = (uint32_t)n_gen;
    gp.stop_at_eog = false;
    size_t ngen = 0;
    CHECK_STATUS(bitnet_generate(s, prompt, np, gp, collect, out, &ngen), BITNET_STATUS_OK);
    bitnet_session_free(s);
    return ngen;
}

/* Greedy agreement of the int8 LM head (lm_head = Q8) with the exact one,
 * counted position by position up to the first divergence, like the native
 * test (core/tests/model_tl.rs); an int8 head moves logits by about 1 % of
 * their spread, so near-ties may flip. */
#define Q8_HEAD_MIN_AGREEMENT 0.75 /* as Q8_HEAD_MIN_AGREEMENT of the native test */
#define Q8_PROMPTS 6
#define Q8_GEN 16

static void test_lm_head(void) {
    bitnet_model_params p = bitnet_model_default_params();
    p.n_threads = 1;
    CHECK(p.lm_head == BITNET_LM_HEAD_EXACT);
    bitnet_model *m = NULL;
    p.lm_head = 7;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_INVALID_ARG);
    CHECK(m == NULL && last_error_has("lm_head"));
    p.lm_head = BITNET_LM_HEAD_EXACT;
    bitnet_model *exact = NULL, *q8 = NULL;
    CHECK_STATUS(bitnet_model_load(model_path, p, &exact), BITNET_STATUS_OK);
    p.lm_head = BITNET_LM_HEAD_Q8;
    CHECK_STATUS(bitnet_model_load(model_path, p, &q8), BITNET_STATUS_OK);
    if (!exact || !q8) {
        bitnet_model_free(exact);
        bitnet_model_free(q8);
        return;
    }
    size_t vocab = bitnet_model_n_vocab(exact);
    size_t same = 0, total = 0;
    for (unsigned seed = 0; seed < Q8_PROMPTS; seed++) {
        bitnet_token prompt[8];
        for (unsigned i = 0; i < 8; i++)
            prompt[i] = (bitnet_token)((i * 7919u + seed * 104729u + 3u) % vocab);
        collect_t a = {0}, b = {0};
        size_t na = greedy_run(exact, prompt, 8, Q8_GEN, &a);
        size_t nb = greedy_run(q8, prompt, 8, Q8_GEN, &b);
        CHECK(na == Q8_GEN && nb == Q8_GEN);
        size_t k = 0;
        while (k < na && k < nb && a.toks[k] == b.toks[k]) k++;
        same += k;
        total += Q8_GEN;
    }
    double rate = (double)same / (double)total;
    printf("lm_head q8 vs exact: greedy agreement %zu/%zu = %.3f\n", same, total, rate);
    CHECK(rate >= Q8_HEAD_MIN_AGREEMENT);

    /* The receipt records the head through the kernels that ran. */
    bitnet_bench_params bp = bitnet_bench_default_params();
    bp.n_gen = 2;
    bp.n_threads = 1;
    char *json = malloc(BITNET_RECEIPT_MAX_BYTES + 1);
    size_t len = 0;
    CHECK_STATUS(bitnet_bench_receipt_json(q8, NULL, 0, bp, json, BITNET_RECEIPT_MAX_BYTES + 1,
                                           &len),
                 BITNET_STATUS_OK);
    CHECK(len > 0 && strstr(json, "\"q8_head_gemv_") != NULL);
    CHECK_STATUS(bitnet_bench_receipt_json(exact, NULL, 0, bp, json,
                                           BITNET_RECEIPT_MAX_BYTES + 1, &len),
                 BITNET_STATUS_OK);
    CHECK(len > 0 && strstr(json, "q8_head_gemv_") == NULL);
    free(json);
    bitnet_model_free(exact);
    bitnet_model_free(q8);
}

/* The TL kernels repack the projections at load and give the same
 * integers, so the same greedy tokens as the default kernels; the receipt
 * names the TL kernels that ran. */
static void test_tl_kernels(void) {
    bitnet_model_params p = bitnet_model_default_params();
    p.n_threads = 1;
    bitnet_model *base = NULL;
    CHECK_STATUS(bitnet_model_load(model_path, p, &base), BITNET_STATUS_OK);
    if (!base) return;
    size_t vocab = bitnet_model_n_vocab(base);
    bitnet_token prompt[6];
    for (unsigned i = 0; i < 6; i++) prompt[i] = (bitnet_token)((i * 7919u + 11u) % vocab);
    collect_t want = {0};
    size_t nw = greedy_run(base, prompt, 6, 16, &want);
    CHECK(nw == 16);
    const bitnet_kernel kinds[2] = {BITNET_KERNEL_TL1, BITNET_KERNEL_TL2};
    const char *ids[2] = {"\"tl1_gemv_", "\"tl2_gemv_"};
    for (int k = 0; k < 2; k++) {
        p.kernel = kinds[k];
        bitnet_model *m = NULL;
        CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_OK);
        if (!m) continue;
        collect_t got = {0};
        CHECK(greedy_run(m, prompt, 6, 16, &got) == nw);
        CHECK(memcmp(got.toks, want.toks, nw * sizeof(bitnet_token)) == 0);
        bitnet_bench_params bp = bitnet_bench_default_params();
        bp.n_gen = 2;
        bp.n_threads = 1;
        char *json = malloc(BITNET_RECEIPT_MAX_BYTES + 1);
        size_t len = 0;
        CHECK_STATUS(bitnet_bench_receipt_json(m, NULL, 0, bp, json,
                                               BITNET_RECEIPT_MAX_BYTES + 1, &len),
                     BITNET_STATUS_OK);
        /* A model without ternary projections (stories260K, all F32) has
         * nothing to repack; one with them runs the TL kernels. */
        bool ternary = strstr(json, "\"i2s_") || strstr(json, "\"tq") || strstr(json, "\"tl");
        CHECK(len > 0 && (ternary ? strstr(json, ids[k]) != NULL
                                  : strstr(json, "\"tl") == NULL));
        free(json);
        bitnet_model_free(m);
    }
    bitnet_model_free(base);
}

static void test_session_outlives_model(void) {
    bitnet_model *m = NULL;
    bitnet_model_params p = bitnet_model_default_params();
    p.n_threads = 1;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_OK);
    bitnet_session *s = NULL;
    CHECK_STATUS(bitnet_session_new(m, bitnet_session_default_params(), &s), BITNET_STATUS_OK);
    bitnet_token bos = bitnet_model_token_bos(m);
    bitnet_model_free(m);
    CHECK_STATUS(bitnet_session_eval(s, &bos, 1), BITNET_STATUS_OK);
    bitnet_session_free(s);
}

static void test_from_memory(void) {
    size_t len = 0;
    unsigned char *bytes = read_file(model_path, &len);
    CHECK(bytes != NULL);
    if (!bytes) return;
    bitnet_model *m = NULL;
    bitnet_model_params p = bitnet_model_default_params();
    p.n_threads = 1;
    /* Truncated: rejected. */
    CHECK_STATUS(bitnet_model_load_from_memory(bytes, len / 2, p, &m), BITNET_STATUS_GGUF);
    CHECK(m == NULL);
    CHECK_STATUS(bitnet_model_load_from_memory(bytes, len, p, &m), BITNET_STATUS_OK);
    free(bytes); /* the model copied them */
    size_t n = 0;
    bitnet_token toks[64];
    CHECK_STATUS(bitnet_tokenize(m, TEXT, strlen(TEXT), true, false, toks, 64, &n),
                 BITNET_STATUS_OK);
    bitnet_session *s = NULL;
    CHECK_STATUS(bitnet_session_new(m, bitnet_session_default_params(), &s), BITNET_STATUS_OK);
    CHECK_STATUS(bitnet_session_eval(s, toks, n), BITNET_STATUS_OK);
    bitnet_session_free(s);
    /* Receipts need a file. */
    char json[64];
    size_t jl = 0;
    CHECK_STATUS(bitnet_bench_receipt_json(m, NULL, 0, bitnet_bench_default_params(), json,
                                           sizeof json, &jl),
                 BITNET_STATUS_INVALID_STATE);
    bitnet_model_free(m);
}

static void test_bench(const bitnet_model *m) {
    bitnet_bench_params bp = bitnet_bench_default_params();
    bp.n_gen = 4;
    bp.n_threads = 1;
    char *json = malloc(BITNET_RECEIPT_MAX_BYTES + 1);
    size_t len = 0;
    bitnet_token prompt[3] = {bitnet_model_token_bos(m), 100, 200};
    CHECK_STATUS(bitnet_bench_receipt_json(m, prompt, 3, bp, json, BITNET_RECEIPT_MAX_BYTES + 1,
                                           &len),
                 BITNET_STATUS_OK);
    CHECK(len > 0 && strlen(json) == len);
    CHECK(strstr(json, "\"schema_version\"") != NULL);
    /* "real" for quantized models, "partial" for float ones (stories260K). */
    CHECK(strstr(json, "\"compute_path\":\"real\"") != NULL ||
          strstr(json, "\"compute_path\":\"partial\"") != NULL);
    CHECK(strstr(json, "\"prompt\":3,\"requested\":4,\"generated\":4") != NULL);
    /* Too small: only the size comes back. */
    char small[16] = "untouched";
    size_t need = 0;
    CHECK_STATUS(bitnet_bench_receipt_json(m, NULL, 0, bp, small, sizeof small, &need),
                 BITNET_STATUS_BUFFER_TOO_SMALL);
    CHECK(need > sizeof small && !strcmp(small, "untouched"));
    bp.n_gen = 0;
    CHECK_STATUS(bitnet_bench_receipt_json(m, NULL, 0, bp, json, BITNET_RECEIPT_MAX_BYTES + 1,
                                           &len),
                 BITNET_STATUS_INVALID_ARG);
    bp = bitnet_bench_default_params();
    CHECK_STATUS(bitnet_bench_receipt_json(NULL, NULL, 0, bp, json, BITNET_RECEIPT_MAX_BYTES + 1,
                                           &len),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_bench_receipt_json(m, NULL, 0, bp, json, BITNET_RECEIPT_MAX_BYTES + 1,
                                           NULL),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_bench_receipt_json(m, NULL, 2, bp, json, BITNET_RECEIPT_MAX_BYTES + 1,
                                           &len),
                 BITNET_STATUS_NULL_ARG);
    free(json);
}

/* A minimal GGUF walk (spec v2/v3, little-endian host): finds tensor `name`
 * in the file image `buf[..len]` and returns a pointer to its data, with its
 * ggml type and element count; NULL when the file or the name is not
 * found. Enough to break a model in memory the way a bad converter would. */
typedef struct {
    const unsigned char *p, *end;
} cursor;

static int take(cursor *c, void *out, uint64_t n) {
    if ((uint64_t)(c->end - c->p) < n) return 0;
    if (out) memcpy(out, c->p, (size_t)n);
    c->p += n;
    return 1;
}

static int skip_value(cursor *c, uint32_t type, int depth) {
    static const uint64_t size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) { /* string: u64 length + bytes */
        uint64_t n;
        return take(c, &n, 8) && take(c, NULL, n);
    }
    if (type == 9) { /* array: element type, u64 count, elements */
        uint32_t t;
        uint64_t n;
        if (depth > 2 || !take(c, &t, 4) || !take(c, &n, 8)) return 0;
        for (uint64_t i = 0; i < n; i++)
            if (!skip_value(c, t, depth + 1)) return 0;
        return 1;
    }
    return type < 13 && take(c, NULL, size[type]);
}

static unsigned char *gguf_tensor(unsigned char *buf, size_t len, const char *name,
                                  uint32_t *type_out, uint64_t *n_out) {
    cursor c = {buf, buf + len};
    uint32_t magic, version, alignment = 32;
    uint64_t n_tensors, n_kv;
    if (!take(&c, &magic, 4) || memcmp(&magic, "GGUF", 4) != 0 || !take(&c, &version, 4) ||
        !take(&c, &n_tensors, 8) || !take(&c, &n_kv, 8))
        return NULL;
    for (uint64_t i = 0; i < n_kv; i++) {
        uint64_t klen;
        uint32_t type;
        const unsigned char *key = c.p + 8;
        if (!take(&c, &klen, 8) || !take(&c, NULL, klen) || !take(&c, &type, 4)) return NULL;
        if (klen == 17 && memcmp(key, "general.alignment", 17) == 0 && type == 4) {
            if (!take(&c, &alignment, 4) || alignment == 0) return NULL;
        } else if (!skip_value(&c, type, 0)) {
            return NULL;
        }
    }
    int found = 0;
    uint64_t found_offset = 0, found_n = 0;
    uint32_t found_type = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        uint64_t nlen, offset, n = 1;
        uint32_t n_dims, type;
        const unsigned char *tname = c.p + 8;
        if (!take(&c, &nlen, 8) || !take(&c, NULL, nlen) || !take(&c, &n_dims, 4) || n_dims > 4)
            return NULL;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t dim;
            if (!take(&c, &dim, 8)) return NULL;
            n *= dim;
        }
        if (!take(&c, &type, 4) || !take(&c, &offset, 8)) return NULL;
        if (nlen == strlen(name) && memcmp(tname, name, nlen) == 0) {
            found = 1; /* the data start is known after the last info */
            found_offset = offset;
            found_n = n;
            found_type = type;
        }
    }
    if (!found) return NULL;
    uint64_t data = (uint64_t)(c.p - buf);
    data = (data + alignment - 1) / alignment * alignment;
    if (data + found_offset > len) return NULL;
    *type_out = found_type;
    *n_out = found_n;
    return buf + data + found_offset;
}

/* Validation: a model whose output norm a converter multiplied by 100 loads
 * with a finding when not strict, and is refused (BITNET_STATUS_VALIDATION,
 * naming the rule and the tensor) when strict or with BITNET_STRICT=1. */
static void test_validation(void) {
    bitnet_model_params p = bitnet_model_default_params();
    p.n_threads = 1;
    CHECK(!p.strict);
    bitnet_model *m = NULL;

    /* The good model: clean under strict mode. */
    p.strict = true;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_OK);
    CHECK(bitnet_model_n_findings(m) == 0);
    bitnet_model_free(m);
    m = NULL;

    size_t len = 0;
    unsigned char *bytes = read_file(model_path, &len);
    CHECK(bytes != NULL);
    if (!bytes) return;
    uint32_t type = 99;
    uint64_t n = 0;
    unsigned char *norm = gguf_tensor(bytes, len, "output_norm.weight", &type, &n);
    CHECK(norm != NULL && type == 0 /* F32 */ && n > 0);
    if (!norm || type != 0 || (uint64_t)(bytes + len - norm) < n * 4) {
        free(bytes);
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, norm + 4 * i, 4);
        v *= 100.0f;
        memcpy(norm + 4 * i, &v, 4);
    }

    /* Not strict: it loads; the finding names rule and tensor. */
    p.strict = false;
    CHECK_STATUS(bitnet_model_load_from_memory(bytes, len, p, &m), BITNET_STATUS_OK);
    size_t count = bitnet_model_n_findings(m);
    CHECK(count >= 1);
    CHECK(some_item_has(bitnet_model_finding_by_index, m, count,
                        "error [norm.rms] output_norm.weight"));
    char small[8];
    size_t flen = 0;
    CHECK_STATUS(bitnet_model_finding_by_index(m, count, small, sizeof small, &flen),
                 BITNET_STATUS_INVALID_ARG);
    CHECK_STATUS(bitnet_model_finding_by_index(NULL, 0, small, sizeof small, &flen),
                 BITNET_STATUS_NULL_ARG);
    CHECK_STATUS(bitnet_model_finding_by_index(m, 0, small, sizeof small, NULL),
                 BITNET_STATUS_NULL_ARG);
    CHECK(bitnet_model_n_findings(NULL) == 0);
    bitnet_model_free(m);
    m = NULL;

    /* Strict: refused, nothing written, the message names rule and tensor. */
    p.strict = true;
    CHECK_STATUS(bitnet_model_load_from_memory(bytes, len, p, &m), BITNET_STATUS_VALIDATION);
    CHECK(m == NULL);
    CHECK(last_error_has("refusing the model in memory"));
    CHECK(last_error_has("[norm.rms] output_norm.weight"));

    /* BITNET_STRICT=1 makes a non-strict load strict, as in the CLI. */
    p.strict = false;
    CHECK(setenv("BITNET_STRICT", "1", 1) == 0);
    CHECK_STATUS(bitnet_model_load_from_memory(bytes, len, p, &m), BITNET_STATUS_VALIDATION);
    CHECK(m == NULL && last_error_has("[norm.rms] output_norm.weight"));
    CHECK(unsetenv("BITNET_STRICT") == 0);
    CHECK_STATUS(bitnet_model_load_from_memory(bytes, len, p, &m), BITNET_STATUS_OK);
    bitnet_model_free(m);
    free(bytes);
}

static void test_panic(void) {
    CHECK_STATUS(bitnet_test_panic(), BITNET_STATUS_PANIC);
    CHECK(last_error_has("injected test panic"));
    /* The library still works afterwards. */
    CHECK(bitnet_abi_version() == BITNET_ABI_VERSION);
}

int main(int argc, char **argv) {
    model_path = argc > 1 ? argv[1] : "tests/models/shakespeare-i2s.gguf";
    test_version_and_status();
    test_last_error();
    test_load_errors();

    bitnet_model_params p = bitnet_model_default_params();
    p.n_threads = 1;
    bitnet_model *m = NULL;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_OK);
    if (!m) {
        fprintf(stderr, "cannot load %s; stopping\n", model_path);
        printf("%d passed, %d failed\n", passed, failed + 1);
        return 1;
    }
    test_getters(m);
    test_tokenizer(m);
    test_session(m);
    test_bench(m);
    bitnet_model_free(m);

    /* The same model read into memory instead of mapped. */
    p.use_mmap = false;
    CHECK_STATUS(bitnet_model_load(model_path, p, &m), BITNET_STATUS_OK);
    test_getters(m);
    bitnet_model_free(m);

    test_session_outlives_model();
    test_from_memory();
    test_validation();
    test_lm_head();
    test_tl_kernels();
    test_panic();

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
