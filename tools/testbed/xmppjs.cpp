#include "xmppjs.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unistd.h>

#ifndef XMPP_TESTBED_JS_DIR
#define XMPP_TESTBED_JS_DIR ""
#endif

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace xmpp::testbed {

namespace {

const std::string empty_string;

// A minimal reader of RFC 8259 text, for the flat objects the script prints.
class json_reader {
public:
    explicit json_reader(std::string_view s) : s_(s) {}

    void skip_ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
    }
    bool eat(char c) {
        skip_ws();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    bool at_end() {
        skip_ws();
        return i_ == s_.size();
    }
    bool peek(char c) {
        skip_ws();
        return i_ < s_.size() && s_[i_] == c;
    }

    /// A string (after its opening quote was seen by peek), unescaped to UTF-8.
    bool string(std::string& out) {
        if (!eat('"')) return false;
        while (i_ < s_.size()) {
            char c = s_[i_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return false; // RFC 8259 section 7
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= s_.size()) return false;
            switch (s_[i_++]) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                std::uint32_t cp = 0;
                if (!hex4(cp)) return false;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    // A high surrogate must be followed by \uDC00-\uDFFF.
                    std::uint32_t lo = 0;
                    if (i_ + 1 >= s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') return false;
                    i_ += 2;
                    if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return false;
                }
                utf8(cp, out);
                break;
            }
            default: return false;
            }
        }
        return false;
    }

    /// A number, true, false or null, kept as its text.
    bool scalar(std::string& out) {
        skip_ws();
        std::size_t start = i_;
        while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
        out.assign(s_.substr(start, i_ - start));
        if (out == "true" || out == "false" || out == "null") return true;
        if (out.empty()) return false;
        for (char c : out)
            if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) return false;
        return true;
    }

private:
    bool hex4(std::uint32_t& v) {
        if (i_ + 4 > s_.size()) return false;
        for (int k = 0; k < 4; ++k) {
            char c = s_[i_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
            else return false;
        }
        return true;
    }
    static void utf8(std::uint32_t cp, std::string& out) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

std::vector<std::string> script_args(const xmppjs_options& o, const fs::path& dir) {
    std::vector<std::string> a = {o.node, (dir / "xmppjs_client.mjs").string()};
    auto opt = [&](const char* name, const std::string& v) {
        if (v.empty()) return;
        a.push_back(name);
        a.push_back(v);
    };
    opt("--service", o.service);
    opt("--domain", o.domain);
    opt("--username", o.username);
    opt("--password", o.password);
    opt("--resource", o.resource);
    opt("--mechanism", o.mechanism);
    if (o.presence) a.push_back("--presence");
    if (!o.message_to.empty()) {
        opt("--message-to", o.message_to);
        a.push_back("--body");
        a.push_back(o.message_body);
    }
    if (!o.iq_to.empty()) {
        opt("--iq-to", o.iq_to);
        opt("--iq-type", o.iq_type);
        opt("--iq-payload", o.iq_payload);
        opt("--iq-id", o.iq_id);
        if (o.iq_error_ok) a.push_back("--iq-error-ok");
    }
    if (o.wait > 0) {
        opt("--wait", std::to_string(o.wait));
        opt("--wait-for", o.wait_for);
    }
    opt("--timeout", std::to_string(o.timeout.count()));
    if (o.trace) a.push_back("--trace");
    a.insert(a.end(), o.extra_args.begin(), o.extra_args.end());
    return a;
}

fs::path temp_log_path() {
    static std::atomic<unsigned> counter{0};
    return fs::temp_directory_path() /
           ("xmppjs-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".log");
}

} // namespace

const std::string& xmppjs_event::get(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? empty_string : it->second;
}

std::optional<xmppjs_event> parse_xmppjs_event(std::string_view line) {
    json_reader r(line);
    if (!r.eat('{')) return std::nullopt;
    xmppjs_event ev;
    bool have_name = false;
    if (!r.eat('}')) {
        do {
            std::string key, value;
            if (!r.string(key) || !r.eat(':')) return std::nullopt;
            bool is_string = r.peek('"');
            if (is_string ? !r.string(value) : !r.scalar(value)) return std::nullopt;
            if (key == "event") {
                if (!is_string) return std::nullopt;
                ev.name = std::move(value);
                have_name = true;
            } else {
                ev.fields[std::move(key)] = std::move(value);
            }
        } while (r.eat(','));
        if (!r.eat('}')) return std::nullopt;
    }
    if (!r.at_end() || !have_name) return std::nullopt;
    return ev;
}

const xmppjs_event* xmppjs_result::find(std::string_view name) const {
    for (auto& e : events)
        if (e.name == name) return &e;
    return nullptr;
}

std::vector<const xmppjs_event*> xmppjs_result::all(std::string_view name) const {
    std::vector<const xmppjs_event*> out;
    for (auto& e : events)
        if (e.name == name) out.push_back(&e);
    return out;
}

fs::path xmppjs_dir(const fs::path& given) {
    if (!given.empty()) return given;
    if (const char* e = std::getenv("XMPP_TESTBED_JS_DIR"); e && *e) return e;
    return XMPP_TESTBED_JS_DIR;
}

bool xmppjs_available(std::string* why, const xmppjs_options& opts) {
    auto fail = [&](std::string msg) {
        if (why) *why = std::move(msg);
        return false;
    };
    const fs::path dir = xmppjs_dir(opts.js_dir);
    std::error_code ec;
    if (!fs::exists(dir / "xmppjs_client.mjs", ec))
        return fail("no " + (dir / "xmppjs_client.mjs").string() + " (set XMPP_TESTBED_JS_DIR to test/js)");
    for (const char* pkg : {"@xmpp/client", "ws"}) {
        const fs::path p = dir / "node_modules" / pkg / "package.json";
        if (!fs::exists(p, ec))
            return fail("npm package " + std::string(pkg) + " missing (no " + p.string() +
                        "): run scripts/setup.sh test");
    }
    // Node >= 18: what the script and its polyfills need (Debian 12 has 18).
    int rc = run_command({opts.node, "-e",
                          "process.exit(Number(process.versions.node.split('.')[0]) >= 18 ? 0 : 3)"},
                         {}, {}, 20s);
    if (rc == 3) return fail(opts.node + " is older than Node 18: run scripts/setup.sh test");
    if (rc != 0) return fail("cannot run " + opts.node + " (not in PATH?): run scripts/setup.sh test");
    return true;
}

xmppjs_client::xmppjs_client(xmppjs_options opts) : opts_(std::move(opts)) {
    if (opts_.log_file.empty()) {
        opts_.log_file = temp_log_path();
        temp_log_ = true;
        std::ofstream(opts_.log_file, std::ios::trunc);
    } else {
        std::error_code ec;
        auto size = fs::file_size(opts_.log_file, ec);
        read_ = ec ? 0 : static_cast<std::size_t>(size);
    }
    deadline_ = std::chrono::steady_clock::now() + opts_.timeout + opts_.kill_grace;
    proc_ = process(script_args(opts_, xmppjs_dir(opts_.js_dir)), opts_.log_file.string());
}

xmppjs_client::~xmppjs_client() {
    proc_.stop(1s);
    if (temp_log_) {
        std::error_code ec;
        fs::remove(opts_.log_file, ec);
    }
}

bool xmppjs_client::poll() {
    // Exit first, read second: then nothing written before the exit is missed.
    const bool exited = exited_ || !proc_.running();
    std::ifstream in(opts_.log_file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(read_));
    std::string chunk{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    read_ += chunk.size();
    output_ += chunk;
    partial_ += chunk;
    std::size_t start = 0;
    for (std::size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
        if (auto ev = parse_xmppjs_event(std::string_view(partial_).substr(start, nl - start)))
            events_.push_back(std::move(*ev));
    }
    partial_.erase(0, start);
    if (exited && !exited_) {
        exited_ = true;
        if (auto ev = parse_xmppjs_event(partial_)) events_.push_back(std::move(*ev));
        partial_.clear();
    }
    return !exited_;
}

std::optional<xmppjs_event> xmppjs_client::wait_for(std::string_view name, std::chrono::milliseconds timeout) {
    const auto until = std::min(deadline_, std::chrono::steady_clock::now() + timeout);
    std::size_t seen = 0;
    for (;;) {
        bool alive = poll();
        for (; seen < events_.size(); ++seen)
            if (events_[seen].name == name) return events_[seen];
        if (!alive || std::chrono::steady_clock::now() >= until) return std::nullopt;
        std::this_thread::sleep_for(10ms);
    }
}

xmppjs_result xmppjs_client::wait() {
    xmppjs_result r;
    while (poll()) {
        if (std::chrono::steady_clock::now() >= deadline_) {
            r.killed = true;
            proc_.stop(1s);
            poll();
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    r.exit_status = r.killed ? -1 : proc_.exit_status();
    r.events = events_;
    r.output = output_;
    return r;
}

xmppjs_result run_xmppjs(const xmppjs_options& opts) {
    xmppjs_client c(opts);
    return c.wait();
}

} // namespace xmpp::testbed
