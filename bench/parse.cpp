// bench/parse: framer + pugixml parse + namespace resolution + stanza
// classification over a seeded corpus fed in 4 KiB chunks, beside streaming
// expat (with namespaces) and memcpy over the same bytes, in the same run.
//
// Prints BENCH lines; see bench/RESULTS.md.
#include "sample_stream.hpp"

#include <xmpp/stanza.hpp>
#include <xmpp/xml/reader.hpp>

#include <expat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr std::size_t chunk = 4096;
constexpr int repeats = 5; // best of: the machines are shared and noisy

using clock_type = std::chrono::steady_clock;

std::string load_or_generate(const std::filesystem::path& path, bool mix, std::size_t min_bytes) {
    if (std::ifstream in{path, std::ios::binary}) {
        std::stringstream ss;
        ss << in.rdbuf();
        if (ss.str().size() >= min_bytes) return ss.str();
    }
    bench::corpus_gen gen(mix ? 0x5eed0002 : 0x5eed0001);
    std::string s(bench::corpus_gen::header());
    while (s.size() < min_bytes) {
        if (mix) gen.mixed(s);
        else gen.chat_message(s);
    }
    s += bench::corpus_gen::trailer();
    std::ofstream(path, std::ios::binary) << s;
    return s;
}

// Calls fn(pointer, size) for each 4 KiB read of `data`.
template <class F>
void for_each_read(const std::string& data, F&& fn) {
    for (std::size_t off = 0; off < data.size(); off += chunk) fn(data.data() + off, std::min(chunk, data.size() - off));
}

struct result {
    double seconds = 1e30;
    std::size_t stanzas = 0;
};

// Ours: bytes -> framer -> pugixml (in place) -> namespaces -> classify.
result run_ours(const std::string& data) {
    result best;
    for (int r = 0; r < repeats; ++r) {
        xmpp::xml::reader rd;
        std::size_t stanzas = 0, classified[4] = {};
        auto t0 = clock_type::now();
        for_each_read(data, [&](const char* bytes, std::size_t n) {
            auto buf = rd.prepare(n);
            std::memcpy(buf.data(), bytes, n); // stands for the socket read
            rd.commit(n);
            boost::system::error_code ec;
            for (;;) {
                auto ev = rd.next(ec);
                if (ec) {
                    std::fprintf(stderr, "parse error: %s (%.*s)\n", ec.message().c_str(),
                                 int(rd.error_text().size()), rd.error_text().data());
                    std::exit(1);
                }
                if (ev == xmpp::xml::frame_event::need_more) break;
                if (ev == xmpp::xml::frame_event::element) {
                    ++stanzas;
                    ++classified[static_cast<int>(xmpp::classify(rd.element()))];
                }
            }
        });
        double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        if (classified[3] != 0) {
            std::fprintf(stderr, "unclassified stanzas: %zu\n", classified[3]);
            std::exit(1);
        }
        if (s < best.seconds) best = {s, stanzas};
    }
    return best;
}

// Reference: streaming expat with namespace processing; counts depth-1 elements.
struct expat_state {
    int depth = 0;
    std::size_t stanzas = 0;
};

result run_expat(const std::string& data) {
    result best;
    for (int r = 0; r < repeats; ++r) {
        expat_state st;
        XML_Parser p = XML_ParserCreateNS("UTF-8", ' ');
        XML_SetUserData(p, &st);
        XML_SetElementHandler(
            p, [](void* u, const XML_Char*, const XML_Char**) { ++static_cast<expat_state*>(u)->depth; },
            [](void* u, const XML_Char*) {
                auto* s = static_cast<expat_state*>(u);
                if (--s->depth == 1) ++s->stanzas;
            });
        XML_SetCharacterDataHandler(p, [](void*, const XML_Char*, int) {});
        auto t0 = clock_type::now();
        std::size_t done = 0;
        for_each_read(data, [&](const char* bytes, std::size_t n) {
            done += n;
            if (XML_Parse(p, bytes, static_cast<int>(n), done == data.size()) != XML_STATUS_OK) {
                std::fprintf(stderr, "expat error: %s\n", XML_ErrorString(XML_GetErrorCode(p)));
                std::exit(1);
            }
        });
        double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        XML_ParserFree(p);
        if (s < best.seconds) best = {s, st.stanzas};
    }
    return best;
}

double run_memcpy(const std::string& data) {
    std::vector<char> dst(chunk);
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
        auto t0 = clock_type::now();
        for_each_read(data, [&](const char* bytes, std::size_t n) {
            std::memcpy(dst.data(), bytes, n);
            asm volatile("" : : "r"(dst.data()) : "memory");
        });
        best = std::min(best, std::chrono::duration<double>(clock_type::now() - t0).count());
    }
    return best;
}

void line(const char* name, double v, const char* unit) { std::printf("BENCH %s %.0f %s\n", name, v, unit); }
void ratio(const char* name, double v) { std::printf("BENCH %s %.2f x\n", name, v); }

} // namespace

int main(int argc, char** argv) {
    const std::filesystem::path dir = argc > 1 ? argv[1] : ".";
    std::size_t mb = 52;
    if (const char* e = std::getenv("XMPP_BENCH_MB")) mb = std::strtoul(e, nullptr, 10);
    const std::string msg = load_or_generate(dir / "corpus_msg.xml", false, mb << 20);
    const std::string mix = load_or_generate(dir / "corpus_mix.xml", true, mb << 20);
    const double mb_msg = msg.size() / 1e6, mb_mix = mix.size() / 1e6;

    auto ours_msg = run_ours(msg);
    auto expat_msg = run_expat(msg);
    auto ours_mix = run_ours(mix);
    auto expat_mix = run_expat(mix);
    if (ours_msg.stanzas != expat_msg.stanzas || ours_mix.stanzas != expat_mix.stanzas) {
        std::fprintf(stderr, "stanza counts differ: ours %zu/%zu expat %zu/%zu\n", ours_msg.stanzas,
                     ours_mix.stanzas, expat_msg.stanzas, expat_mix.stanzas);
        return 1;
    }
    const double memcpy_s = run_memcpy(msg);

    std::printf("# corpus: %zu chat messages (%.1f MB, %.0f B/stanza), %zu mixed elements (%.1f MB); "
                "4 KiB chunks; best of %d\n",
                ours_msg.stanzas, mb_msg, msg.size() / double(ours_msg.stanzas), ours_mix.stanzas, mb_mix, repeats);
    line("parse_msg_stanzas_per_s", ours_msg.stanzas / ours_msg.seconds, "1/s");
    line("parse_msg_MB_per_s", mb_msg / ours_msg.seconds, "MB/s");
    line("parse_mix_MB_per_s", mb_mix / ours_mix.seconds, "MB/s");
    line("parse_mix_stanzas_per_s", ours_mix.stanzas / ours_mix.seconds, "1/s");
    line("expat_msg_stanzas_per_s", expat_msg.stanzas / expat_msg.seconds, "1/s");
    line("expat_msg_MB_per_s", mb_msg / expat_msg.seconds, "MB/s");
    line("expat_mix_MB_per_s", mb_mix / expat_mix.seconds, "MB/s");
    line("memcpy_MB_per_s", mb_msg / memcpy_s, "MB/s");
    ratio("parse_vs_expat_msg_ratio", expat_msg.seconds / ours_msg.seconds);
    ratio("parse_vs_expat_mix_ratio", expat_mix.seconds / ours_mix.seconds);
    return 0;
}
