// xmpp-stream-demo: the main job until client sessions land. Generates a
// sample client stream (seeded), reads it back through the XML stream engine
// in 4 KiB reads, and prints what it found and how fast.
//
//   xmpp-stream-demo [megabytes=20] [seed=1]
#include "sample_stream.hpp"

#include <xmpp/jid.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/xml/reader.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    const std::size_t mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20;
    const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;

    bench::corpus_gen gen(seed);
    std::string stream(bench::corpus_gen::header());
    while (stream.size() < (mb << 20)) gen.mixed(stream);
    stream += bench::corpus_gen::trailer();
    std::printf("generated a %.1f MB client stream (seed %llu)\n", stream.size() / 1e6,
                static_cast<unsigned long long>(seed));

    xmpp::xml::reader reader;
    std::size_t kinds[4] = {};
    std::map<std::string, std::size_t> payload_ns;
    std::set<xmpp::jid> senders;
    std::size_t bad_jids = 0;
    bool closed = false;

    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t off = 0; off < stream.size(); off += 4096) {
        const std::size_t n = std::min<std::size_t>(4096, stream.size() - off);
        auto buf = reader.prepare(n);
        std::memcpy(buf.data(), stream.data() + off, n); // a socket read would land here
        reader.commit(n);
        for (;;) {
            boost::system::error_code ec;
            auto ev = reader.next(ec);
            if (ec) {
                std::printf("stream error <%s/>: %.*s\n", std::string(xmpp::to_string(static_cast<xmpp::stream_errc>(ec.value()))).c_str(),
                            int(reader.error_text().size()), reader.error_text().data());
                return 1;
            }
            if (ev == xmpp::xml::frame_event::need_more) break;
            if (ev == xmpp::xml::frame_event::stream_open)
                std::printf("stream header: from='%s' to='%s' version='%s' content namespace '%s'\n",
                            reader.header().from.c_str(), reader.header().to.c_str(),
                            reader.header().version.c_str(), reader.header().default_ns.c_str());
            if (ev == xmpp::xml::frame_event::stream_close) closed = true;
            if (ev != xmpp::xml::frame_event::element) continue;
            auto el = reader.element();
            ++kinds[static_cast<int>(xmpp::classify(el))];
            for (auto child : xmpp::xml::children(el))
                if (child.ns() != el.ns()) ++payload_ns[std::string(child.ns())];
            if (auto from_attr = el.find_attr("from")) {
                boost::system::error_code jec;
                auto from = xmpp::jid::parse(*from_attr, jec);
                if (jec) ++bad_jids;
                else senders.insert(from.bare());
            }
        }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::size_t total = kinds[0] + kinds[1] + kinds[2] + kinds[3];

    std::printf("read %zu top-level elements: %zu message, %zu presence, %zu iq, %zu other; stream %s\n", total,
                kinds[0], kinds[1], kinds[2], kinds[3], closed ? "closed cleanly" : "NOT closed");
    std::printf("%zu distinct bare sender JIDs, %zu unparsable from addresses\n", senders.size(), bad_jids);
    std::vector<std::pair<std::size_t, std::string>> top;
    for (auto& [ns, c] : payload_ns) top.emplace_back(c, ns);
    std::sort(top.rbegin(), top.rend());
    std::printf("extension namespaces (children of stanzas):\n");
    for (std::size_t i = 0; i < top.size() && i < 8; ++i)
        std::printf("  %8zu  %s\n", top[i].first, top[i].second.c_str());
    std::printf("%.3f s: %.0f stanzas/s, %.0f MB/s (framing, parsing, namespaces, classification, JIDs)\n", s,
                total / s, stream.size() / 1e6 / s);
    return closed && total > 0 ? 0 : 1;
}
