// Counts global operator new calls, for tests that assert a steady state
// without allocation. Include in exactly one translation unit per test
// executable (it replaces the global operator new/delete).
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace xmpp::test {
inline std::atomic<std::size_t> allocations{0};
}

void* operator new(std::size_t n) {
    xmpp::test::allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
