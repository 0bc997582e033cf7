// C++ use of bitnet.h: RAII handles, exceptions from status codes, a lambda
// as the streaming callback. Also a test: the streamed pieces must equal
// bitnet_detokenize of the streamed tokens, and two greedy runs must agree.
//
//   g++ -std=c++17 -Iinclude ffi/examples/generate.cpp -o generate_cpp
//       -Ltarget/release -lbitnet -Wl,-rpath,$PWD/target/release    (one line)
//   ./generate_cpp [MODEL.gguf] [PROMPT] [N_TOKENS]
#include "bitnet.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Error : std::runtime_error {
    bitnet_status status;
    Error(const char *what, bitnet_status st)
        : std::runtime_error(std::string(what) + ": " + bitnet_status_str(st) + ": " + last()),
          status(st) {}
    static std::string last() {
        std::string msg(bitnet_last_error(nullptr, 0), '\0');
        bitnet_last_error(&msg[0], msg.size() + 1);
        return msg;
    }
};

void check(bitnet_status st, const char *what) {
    if (st != BITNET_STATUS_OK) throw Error(what, st);
}

struct ModelFree {
    void operator()(bitnet_model *m) const { bitnet_model_free(m); }
};
struct SessionFree {
    void operator()(bitnet_session *s) const { bitnet_session_free(s); }
};
using Model = std::unique_ptr<bitnet_model, ModelFree>;
using Session = std::unique_ptr<bitnet_session, SessionFree>;

// Strict: a model that fails a validation rule is refused
// (BITNET_STATUS_VALIDATION, the message names the rule and the tensor)
// instead of running and printing nonsense.
Model load(const char *path) {
    bitnet_model_params params = bitnet_model_default_params();
    params.strict = true;
    bitnet_model *m = nullptr;
    check(bitnet_model_load(path, params, &m), "load");
    Model model(m);
    // Warnings a strict load lets through (a clean model has none).
    for (size_t i = 0; i < bitnet_model_n_findings(m); i++) {
        size_t n = 0;
        bitnet_status st = bitnet_model_finding_by_index(m, i, nullptr, 0, &n);
        if (st != BITNET_STATUS_BUFFER_TOO_SMALL) check(st, "finding (size)");
        std::string text(n, '\0');
        check(bitnet_model_finding_by_index(m, i, &text[0], n + 1, &n), "finding");
        std::fprintf(stderr, "%s: %s\n", path, text.c_str());
    }
    return model;
}

std::vector<bitnet_token> tokenize(const bitnet_model *m, const std::string &text) {
    size_t n = 0;
    bitnet_status st = bitnet_tokenize(m, text.data(), text.size(), true, false, nullptr, 0, &n);
    if (st != BITNET_STATUS_BUFFER_TOO_SMALL) check(st, "tokenize (size)");
    std::vector<bitnet_token> toks(n);
    check(bitnet_tokenize(m, text.data(), text.size(), true, false, toks.data(), toks.size(), &n),
          "tokenize");
    return toks;
}

std::string detokenize(const bitnet_model *m, const std::vector<bitnet_token> &toks) {
    size_t n = 0;
    bitnet_status st = bitnet_detokenize(m, toks.data(), toks.size(), false, false, nullptr, 0, &n);
    if (st != BITNET_STATUS_OK && st != BITNET_STATUS_BUFFER_TOO_SMALL) check(st, "detokenize");
    std::string text(n, '\0');
    check(bitnet_detokenize(m, toks.data(), toks.size(), false, false, &text[0], n, &n),
          "detokenize");
    return text;
}

// Generates with any callable `on_piece(token, piece)` returning bool.
template <class F>
size_t generate(bitnet_session *s, const std::vector<bitnet_token> &prompt,
                bitnet_sampler_params params, F &&on_piece) {
    auto trampoline = [](bitnet_token t, const char *piece, size_t len, void *user) -> bool {
        return (*static_cast<F *>(user))(t, std::string(piece, len));
    };
    size_t n = 0;
    check(bitnet_generate(s, prompt.data(), prompt.size(), params, trampoline, &on_piece, &n),
          "generate");
    return n;
}

}  // namespace

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/models/shakespeare-i2s.gguf";
    std::string text = argc > 2 ? argv[2] : "ROMEO:";
    unsigned n_tokens = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 48;
    try {
        Model model = load(path);
        std::vector<bitnet_token> prompt = tokenize(model.get(), text);

        bitnet_session *raw = nullptr;
        check(bitnet_session_new(model.get(), bitnet_session_default_params(), &raw),
              "session_new");
        Session session(raw);

        bitnet_sampler_params params = bitnet_sampler_greedy_params();
        params.max_tokens = n_tokens;
        std::vector<bitnet_token> tokens;
        std::string streamed;
        std::printf("%s", text.c_str());
        generate(session.get(), prompt, params, [&](bitnet_token t, const std::string &piece) {
            tokens.push_back(t);
            streamed += piece;
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return true;
        });
        std::printf("\n");
        std::fflush(stdout);

        // Self-checks (this example doubles as the C++ test).
        int failures = 0;
        if (detokenize(model.get(), tokens) != streamed) {
            std::fprintf(stderr, "streamed text differs from detokenize\n");
            failures++;
        }
        check(bitnet_session_reset(session.get()), "reset");
        std::vector<bitnet_token> again;
        generate(session.get(), prompt, params, [&](bitnet_token t, const std::string &) {
            again.push_back(t);
            return true;
        });
        if (again != tokens) {
            std::fprintf(stderr, "greedy runs differ\n");
            failures++;
        }
        // An error surfaces as an exception carrying the status.
        try {
            load("/nonexistent.gguf");
            failures++;
        } catch (const Error &e) {
            if (e.status != BITNET_STATUS_IO) failures++;
        }
        std::fprintf(stderr, "%d passed, %d failed\n", 3 - failures, failures);
        return failures == 0 ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
