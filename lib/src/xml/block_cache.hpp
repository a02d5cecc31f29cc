// A few freed memory blocks kept per thread for reuse: what a stanza's life
// allocates and frees again and again (pugixml's pages, the framer's input
// buffer) without a trip through malloc and glibc's trimming of the heap top
// (bench/iq_roundtrip). One cache per Tag and thread; Tag::free(p) frees a
// block the cache still holds when the thread ends.
#pragma once

#include <cstddef>

namespace xmpp::xml::detail {

template <class Tag, int Capacity>
struct block_cache {
    struct block {
        void* p = nullptr;
        std::size_t n = 0;
    };

    // A kept block of `want` to `most` bytes, or an empty one.
    static block take(std::size_t want, std::size_t most) noexcept {
        if (gone) return {};
        auto& c = cache;
        for (int i = 0; i < c.n; ++i) {
            if (c.blocks[i].n >= want && c.blocks[i].n <= most) {
                const block b = c.blocks[i];
                c.blocks[i] = c.blocks[--c.n];
                return b;
            }
        }
        return {};
    }

    // Keeps `p` (of `n` bytes) while there is room; false: the caller frees it.
    static bool put(void* p, std::size_t n) noexcept {
        if (gone || cache.n >= Capacity) return false;
        cache.blocks[cache.n++] = {p, n};
        return true;
    }

private:
    struct store {
        block blocks[Capacity];
        int n = 0;
        ~store() {
            for (int i = 0; i < n; ++i) Tag::free(blocks[i].p);
            n = 0;
            gone = true;
        }
    };
    static inline thread_local store cache;
    static inline thread_local bool gone = false; // trivially destructible: valid after the store
};

} // namespace xmpp::xml::detail
