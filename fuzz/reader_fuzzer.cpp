// libFuzzer target: framer + parser (xml::reader) on arbitrary bytes.
//
// Invariants checked beyond "no crash, no sanitizer report":
//  - the events and the error do not depend on how input is chunked;
//  - buffer memory stays bounded by the limits;
//  - every element the reader accepts can be written by the writer, and the
//    written form reads back to the same serialization (reader and writer agree).
#include <xmpp/xml/reader.hpp>
#include <xmpp/xml/writer.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

struct run_result {
    std::vector<std::string> events;
    boost::system::error_code error;
};

xmpp::xml::limits fuzz_limits() {
    xmpp::xml::limits l;
    l.max_element_bytes = 4096;
    l.max_depth = 16;
    l.max_attributes = 16;
    return l;
}

run_result run(const std::uint8_t* data, std::size_t size, std::size_t chunk) {
    xmpp::xml::reader r(fuzz_limits());
    run_result out;
    std::size_t off = 0;
    while (off < size && !out.error) {
        const std::size_t n = std::min(chunk, size - off);
        r.feed(std::string_view(reinterpret_cast<const char*>(data) + off, n));
        off += n;
        if (r.get_framer().capacity() > 3 * 4096 + 64 + chunk) __builtin_trap();
        for (;;) {
            boost::system::error_code ec;
            auto ev = r.next(ec);
            if (ec) {
                out.error = ec;
                break;
            }
            if (ev == xmpp::xml::frame_event::need_more) break;
            if (ev == xmpp::xml::frame_event::stream_open) {
                out.events.push_back("open " + r.header().default_ns);
            } else if (ev == xmpp::xml::frame_event::stream_close) {
                out.events.push_back("close");
            } else {
                std::string s;
                if (auto wec = xmpp::xml::write(r.element(), s, r.header().default_ns)) __builtin_trap();
                out.events.push_back(s);
            }
        }
    }
    return out;
}

// Re-reads a written element inside a stream with the same header.
void check_round_trip(const std::string& el) {
    xmpp::xml::reader r;
    r.feed("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>");
    r.feed(el);
    boost::system::error_code ec;
    if (r.next(ec) != xmpp::xml::frame_event::stream_open) __builtin_trap();
    if (r.next(ec) != xmpp::xml::frame_event::element || ec) __builtin_trap();
    std::string again;
    if (xmpp::xml::write(r.element(), again, "jabber:client")) __builtin_trap();
    if (again != el) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t chunk = 1 + data[0] % 17;
    auto whole = run(data + 1, size - 1, size);
    auto split = run(data + 1, size - 1, chunk);
    if (whole.events != split.events || whole.error != split.error) __builtin_trap();
    for (auto& e : whole.events)
        if (e.starts_with("<") && whole.events.front() == "open jabber:client") check_round_trip(e);
    return 0;
}
