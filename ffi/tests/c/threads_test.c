/*
 * One model shared by N threads, each with its own session: every thread's
 * tokens must equal those of the same work done on one thread. Also runs
 * sessions with several worker threads against single-threaded ones.
 *
 * Usage: threads_test [MODEL.gguf]   (default tests/models/shakespeare-i2s.gguf)
 * Prints "N passed, N failed".
 */
#include "bitnet.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define N_THREADS 4
#define N_GEN 24

static int passed, failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

static const char *PROMPTS[N_THREADS] = {
    "Once upon a time",
    "The little cat",
    "Lily and Tom went to the park",
    "One day, a big dog",
};

typedef struct {
    const bitnet_model *model;
    const char *prompt;
    uint32_t n_threads; /* worker threads of the session */
    uint64_t seed;
    bitnet_token out[N_GEN];
    size_t n_out;
    bitnet_status status;
} job_t;

static bool collect(bitnet_token t, const char *piece, size_t len, void *user_data) {
    job_t *j = user_data;
    (void)piece;
    (void)len;
    if (j->n_out < N_GEN) j->out[j->n_out++] = t;
    return true;
}

static void *run_job(void *arg) {
    job_t *j = arg;
    bitnet_token prompt[64];
    size_t np = 0;
    j->status = bitnet_tokenize(j->model, j->prompt, strlen(j->prompt), true, false, prompt, 64,
                                &np);
    if (j->status != BITNET_STATUS_OK) return NULL;
    bitnet_session_params sp = bitnet_session_default_params();
    sp.n_ctx = 128;
    sp.n_threads = j->n_threads;
    bitnet_session *s = NULL;
    j->status = bitnet_session_new(j->model, sp, &s);
    if (j->status != BITNET_STATUS_OK) return NULL;
    bitnet_sampler_params gp = bitnet_sampler_default_params();
    gp.seed = j->seed;
    gp.max_tokens = N_GEN;
    gp.stop_at_eog = false;
    j->status = bitnet_generate(s, prompt, np, gp, collect, j, NULL);
    bitnet_session_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/models/shakespeare-i2s.gguf";
    bitnet_model_params mp = bitnet_model_default_params();
    mp.n_threads = 1;
    bitnet_model *m = NULL;
    if (bitnet_model_load(path, mp, &m) != BITNET_STATUS_OK) {
        char msg[512];
        bitnet_last_error(msg, sizeof msg);
        fprintf(stderr, "load failed: %s\n", msg);
        printf("0 passed, 1 failed\n");
        return 1;
    }

    /* Reference: every job on this thread, one after the other. */
    job_t ref[N_THREADS], par[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        job_t j = {.model = m, .prompt = PROMPTS[i], .n_threads = 1, .seed = 100 + (uint64_t)i};
        ref[i] = j;
        par[i] = j;
        run_job(&ref[i]);
        CHECK(ref[i].status == BITNET_STATUS_OK && ref[i].n_out == N_GEN);
    }

    /* The same jobs on N threads at once, sharing the model. */
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) pthread_create(&th[i], NULL, run_job, &par[i]);
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_THREADS; i++) {
        CHECK(par[i].status == BITNET_STATUS_OK);
        CHECK(par[i].n_out == ref[i].n_out);
        CHECK(memcmp(par[i].out, ref[i].out, sizeof ref[i].out) == 0);
    }

    /* Sessions with worker threads give the same tokens as with one. */
    job_t multi = ref[0];
    multi.n_threads = 3;
    multi.n_out = 0;
    run_job(&multi);
    CHECK(multi.status == BITNET_STATUS_OK);
    CHECK(memcmp(multi.out, ref[0].out, sizeof ref[0].out) == 0);

    bitnet_model_free(m);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
