/*
 * Load a model, tokenize a prompt, generate with a streaming callback.
 *
 *   cargo build --release -p bitnet-ffi
 *   gcc -std=c11 -Iinclude ffi/examples/generate.c -Ltarget/release -lbitnet \
 *       -Wl,-rpath,$PWD/target/release -o generate
 *   ./generate [MODEL.gguf] [PROMPT] [N_TOKENS]
 */
#include "bitnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, bitnet_status st) {
    char msg[512];
    bitnet_last_error(msg, sizeof msg);
    fprintf(stderr, "%s failed: %s (%s)\n", what, bitnet_status_str(st), msg);
    return 1;
}

/* Streams each piece as it is generated; returning false would stop. */
static bool on_token(bitnet_token token, const char *piece, size_t len, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/models/shakespeare-i2s.gguf";
    const char *text = argc > 2 ? argv[2] : "ROMEO:";
    int n_tokens = argc > 3 ? atoi(argv[3]) : 64;

    if (bitnet_abi_version() != BITNET_ABI_VERSION) {
        fprintf(stderr, "libbitnet ABI %u, header ABI %d\n", bitnet_abi_version(),
                BITNET_ABI_VERSION);
        return 1;
    }

    bitnet_model *model = NULL;
    bitnet_status st = bitnet_model_load(path, bitnet_model_default_params(), &model);
    if (st != BITNET_STATUS_OK) return fail("bitnet_model_load", st);
    fprintf(stderr, "bitnet %s: %s, %zu layers, vocab %zu\n", bitnet_version(),
            bitnet_model_arch(model), bitnet_model_n_layer(model), bitnet_model_n_vocab(model));

    /* Ask for the size, then tokenize into a buffer of that size. */
    size_t n_prompt = 0;
    st = bitnet_tokenize(model, text, strlen(text), true, false, NULL, 0, &n_prompt);
    if (st != BITNET_STATUS_BUFFER_TOO_SMALL) return fail("bitnet_tokenize (size)", st);
    bitnet_token *prompt = malloc(n_prompt * sizeof *prompt);
    st = bitnet_tokenize(model, text, strlen(text), true, false, prompt, n_prompt, &n_prompt);
    if (st != BITNET_STATUS_OK) return fail("bitnet_tokenize", st);

    bitnet_session *session = NULL;
    st = bitnet_session_new(model, bitnet_session_default_params(), &session);
    if (st != BITNET_STATUS_OK) return fail("bitnet_session_new", st);

    bitnet_sampler_params sp = bitnet_sampler_greedy_params();
    sp.max_tokens = (uint32_t)n_tokens;
    size_t n_gen = 0;
    fputs(text, stdout);
    st = bitnet_generate(session, prompt, n_prompt, sp, on_token, NULL, &n_gen);
    if (st != BITNET_STATUS_OK) return fail("bitnet_generate", st);
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "%zu prompt tokens, %zu generated\n", n_prompt, n_gen);

    free(prompt);
    bitnet_session_free(session);
    bitnet_model_free(model);
    return 0;
}
