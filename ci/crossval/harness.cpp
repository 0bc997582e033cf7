// crossval_harness: runs the same token ids through bitnet (libbitnet.so,
// include/bitnet.h) and the reference llama.cpp (libllama.so, llama.h) and
// writes both sides' per-position logits and greedy continuations as JSON.
// The thresholds are checked by std-ext/tests/crossval.rs; this program only
// measures. Built and run by `cargo xtask crossval` (see
// docs/development/validation-framework.md).
//
//   crossval_harness --bitnet MODEL.gguf --llama REF.gguf --n-gen N
//                    [--threads T] --out OUT.json --prompt TEXT [--prompt TEXT]...
//
// MODEL and REF hold the same weights (REF may be a re-encoding llama.cpp
// can read, see xtask/src/crossval.rs). Each prompt is tokenized once, by
// bitnet's tokenizer (BOS added as the vocabulary says), and both engines
// are fed exactly those ids.
//
// Per prompt and side: `logits[i]` are the logits after the tokens
// `seq[0..=i]`, where `seq` is the prompt followed by that side's own greedy
// tokens (argmax, first maximum wins); `greedy[j]` is the argmax of
// `logits[n_prompt - 1 + j]`. There are `n_prompt + n_gen - 1` rows.
//
// bitnet: one token per `bitnet_session_eval` (the C ABI keeps the logits of
// the last evaluated position only). llama.cpp: the prompt in one batch with
// logits for every position, then one token per `llama_decode`; F32 K and V
// cache, flash attention off, CPU only.

#include "bitnet.h"
#include "llama.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string &msg) {
    std::fprintf(stderr, "crossval_harness: %s\n", msg.c_str());
    std::exit(1);
}

void check(bitnet_status st, const char *what) {
    if (st == BITNET_STATUS_OK) {
        return;
    }
    char buf[1024];
    bitnet_last_error(buf, sizeof buf);
    die(std::string(what) + ": " + bitnet_status_str(st) + ": " + buf);
}

// Quiet llama.cpp; keep errors on stderr.
void llama_log(ggml_log_level level, const char *text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR) {
        std::fputs(text, stderr);
    }
}

uint32_t argmax_first(const std::vector<float> &v) {
    size_t best = 0;
    for (size_t i = 1; i < v.size(); ++i) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return static_cast<uint32_t>(best);
}

struct Side {
    std::vector<std::vector<float>> logits;
    std::vector<uint32_t> greedy;
};

Side run_bitnet(bitnet_session *s, const std::vector<uint32_t> &prompt, int n_gen) {
    check(bitnet_session_reset(s), "bitnet_session_reset");
    Side out;
    auto eval = [&](uint32_t tok) {
        check(bitnet_session_eval(s, &tok, 1), "bitnet_session_eval");
        const float *p = nullptr;
        size_t n = 0;
        check(bitnet_session_logits(s, &p, &n), "bitnet_session_logits");
        out.logits.emplace_back(p, p + n);
    };
    for (uint32_t t : prompt) {
        eval(t);
    }
    for (int j = 0; j < n_gen; ++j) {
        uint32_t next = argmax_first(out.logits.back());
        out.greedy.push_back(next);
        if (j + 1 < n_gen) {
            eval(next);
        }
    }
    return out;
}

Side run_llama(llama_context *ctx, int n_vocab, const std::vector<uint32_t> &prompt, int n_gen) {
    llama_memory_clear(llama_get_memory(ctx), true);
    Side out;
    int n_past = 0;
    auto decode = [&](const std::vector<uint32_t> &toks) {
        const int n = static_cast<int>(toks.size());
        llama_batch b = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; ++i) {
            b.token[i] = static_cast<llama_token>(toks[i]);
            b.pos[i] = n_past + i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = 1;
        }
        b.n_tokens = n;
        const int rc = llama_decode(ctx, b);
        if (rc != 0) {
            llama_batch_free(b);
            die("llama_decode returned " + std::to_string(rc));
        }
        for (int i = 0; i < n; ++i) {
            const float *p = llama_get_logits_ith(ctx, i);
            if (p == nullptr) {
                die("llama_get_logits_ith returned NULL");
            }
            out.logits.emplace_back(p, p + n_vocab);
        }
        llama_batch_free(b);
        n_past += n;
    };
    decode(prompt);
    for (int j = 0; j < n_gen; ++j) {
        uint32_t next = argmax_first(out.logits.back());
        out.greedy.push_back(next);
        if (j + 1 < n_gen) {
            decode({next});
        }
    }
    return out;
}

void write_string(FILE *f, const std::string &s) {
    std::fputc('"', f);
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            std::fprintf(f, "\\%c", c);
        } else if (c < 0x20) {
            std::fprintf(f, "\\u%04x", c);
        } else {
            std::fputc(c, f);
        }
    }
    std::fputc('"', f);
}

void write_ids(FILE *f, const std::vector<uint32_t> &v) {
    std::fputc('[', f);
    for (size_t i = 0; i < v.size(); ++i) {
        std::fprintf(f, "%s%u", i ? "," : "", v[i]);
    }
    std::fputc(']', f);
}

// %.9g round-trips every f32; a non-finite value becomes null (the checker
// reports it as a failure).
void write_side(FILE *f, const Side &s) {
    std::fputs("{\"greedy\":", f);
    write_ids(f, s.greedy);
    std::fputs(",\"logits\":[", f);
    for (size_t r = 0; r < s.logits.size(); ++r) {
        std::fputs(r ? ",\n[" : "\n[", f);
        const auto &row = s.logits[r];
        for (size_t i = 0; i < row.size(); ++i) {
            if (std::isfinite(row[i])) {
                std::fprintf(f, "%s%.9g", i ? "," : "", static_cast<double>(row[i]));
            } else {
                std::fprintf(f, "%snull", i ? "," : "");
            }
        }
        std::fputc(']', f);
    }
    std::fputs("]}", f);
}

}  // namespace

int main(int argc, char **argv) {
    std::string bitnet_path, llama_path, out_path;
    std::vector<std::string> prompts;
    int n_gen = 8;
    int threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) {
            die("missing value after " + a);
        }
        const char *v = argv[++i];
        if (a == "--bitnet") {
            bitnet_path = v;
        } else if (a == "--llama") {
            llama_path = v;
        } else if (a == "--out") {
            out_path = v;
        } else if (a == "--prompt") {
            prompts.emplace_back(v);
        } else if (a == "--n-gen") {
            n_gen = std::atoi(v);
        } else if (a == "--threads") {
            threads = std::atoi(v);
        } else {
            die("unknown argument " + a);
        }
    }
    if (bitnet_path.empty() || llama_path.empty() || out_path.empty() || prompts.empty() ||
        n_gen < 1 || threads < 1) {
        die("usage: --bitnet M --llama R --out O.json --prompt TEXT... [--n-gen N>=1] [--threads T>=1]");
    }
    if (bitnet_abi_version() != BITNET_ABI_VERSION) {
        die("libbitnet ABI version differs from bitnet.h");
    }

    bitnet_model_params mp = bitnet_model_default_params();
    mp.n_threads = static_cast<uint32_t>(threads);
    bitnet_model *bm = nullptr;
    check(bitnet_model_load(bitnet_path.c_str(), mp, &bm), "bitnet_model_load");
    const size_t n_vocab = bitnet_model_n_vocab(bm);

    std::vector<std::vector<uint32_t>> ids;
    size_t longest = 0;
    for (const auto &p : prompts) {
        size_t n = 0;
        const bitnet_status st = bitnet_tokenize(bm, p.data(), p.size(), true, false, nullptr, 0, &n);
        if (st != BITNET_STATUS_BUFFER_TOO_SMALL && st != BITNET_STATUS_OK) {
            check(st, "bitnet_tokenize");
        }
        std::vector<uint32_t> t(n);
        check(bitnet_tokenize(bm, p.data(), p.size(), true, false, t.data(), t.size(), &n),
              "bitnet_tokenize");
        if (t.empty()) {
            die("prompt tokenizes to no tokens: " + p);
        }
        longest = t.size() > longest ? t.size() : longest;
        ids.push_back(std::move(t));
    }
    const size_t n_ctx = longest + static_cast<size_t>(n_gen);

    bitnet_session_params sp = bitnet_session_default_params();
    sp.n_ctx = static_cast<uint32_t>(n_ctx);
    sp.n_threads = static_cast<uint32_t>(threads);
    bitnet_session *bs = nullptr;
    check(bitnet_session_new(bm, sp, &bs), "bitnet_session_new");

    llama_log_set(llama_log, nullptr);
    llama_backend_init();
    llama_model_params lmp = llama_model_default_params();
    lmp.n_gpu_layers = 0;
    llama_model *lm = llama_model_load_from_file(llama_path.c_str(), lmp);
    if (lm == nullptr) {
        die("llama.cpp cannot load " + llama_path);
    }
    const int l_vocab = llama_vocab_n_tokens(llama_model_get_vocab(lm));
    if (l_vocab < 0 || static_cast<size_t>(l_vocab) != n_vocab) {
        die("vocabulary sizes differ: bitnet " + std::to_string(n_vocab) + ", llama.cpp " +
            std::to_string(l_vocab));
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(n_ctx);
    cp.n_batch = static_cast<uint32_t>(n_ctx);
    cp.n_ubatch = static_cast<uint32_t>(n_ctx);
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.offload_kqv = false;
    cp.no_perf = true;
    llama_context *ctx = llama_init_from_model(lm, cp);
    if (ctx == nullptr) {
        die("llama.cpp cannot create a context");
    }

    FILE *f = std::fopen(out_path.c_str(), "w");
    if (f == nullptr) {
        die("cannot write " + out_path);
    }
    std::fputs("{\"bitnet_model\":", f);
    write_string(f, bitnet_path);
    std::fputs(",\"llama_model\":", f);
    write_string(f, llama_path);
    // Which SIMD paths llama.cpp was built with: its float summation order,
    // hence where Q8_K rounding flips land (docs/development/validation-framework.md).
    std::fputs(",\"llama_system_info\":", f);
    write_string(f, llama_print_system_info());
    std::fputs(",\"bitnet_version\":", f);
    write_string(f, bitnet_version());
    std::fprintf(f,
                 ",\"settings\":{\"n_gen\":%d,\"threads\":%d,\"n_ctx\":%zu,\"type_k\":\"f32\","
                 "\"type_v\":\"f32\",\"flash_attn\":false},\"n_vocab\":%zu,\"prompts\":[",
                 n_gen, threads, n_ctx, n_vocab);
    for (size_t p = 0; p < prompts.size(); ++p) {
        const Side b = run_bitnet(bs, ids[p], n_gen);
        const Side l = run_llama(ctx, l_vocab, ids[p], n_gen);
        std::fputs(p ? ",\n{\"text\":" : "\n{\"text\":", f);
        write_string(f, prompts[p]);
        std::fputs(",\"tokens\":", f);
        write_ids(f, ids[p]);
        std::fputs(",\"bitnet\":", f);
        write_side(f, b);
        std::fputs(",\"llama\":", f);
        write_side(f, l);
        std::fputc('}', f);
    }
    std::fputs("]}\n", f);
    if (std::fclose(f) != 0) {
        die("cannot write " + out_path);
    }

    llama_free(ctx);
    llama_model_free(lm);
    llama_backend_free();
    bitnet_session_free(bs);
    bitnet_model_free(bm);
    return 0;
}
