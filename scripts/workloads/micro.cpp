// memcheck bench workload (a) and (b): malloc/free and new/delete pairs of mixed sizes, made
// 10 to 15 frames below main through a few different call paths, as a program's allocations
// are. Build: g++ -O2 -fomit-frame-pointer (no frame pointers, the common case).
// Usage: micro PAIRS [THREADS]   (the pairs are split across the threads)
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

const int RING = 64;

struct State {
    void *c_ring[RING] = {};
    char *cxx_ring[RING] = {};
    unsigned long i = 0;
    unsigned long sum = 0;
};

size_t size_of(unsigned long i) {
    // Mostly small blocks, some medium, a few larger: 16..4111 bytes.
    unsigned long r = (i * 2654435761u) >> 7;
    if ((r & 15) == 0) return 512 + (r & 3599);
    return 16 + (r & 255);
}

__attribute__((noinline)) void leaf_c(State &s) {
    unsigned slot = s.i % RING;
    free(s.c_ring[slot]);
    char *p = static_cast<char *>(malloc(size_of(s.i)));
    p[0] = static_cast<char>(s.i);
    s.c_ring[slot] = p;
    asm volatile("" ::: "memory");
}

__attribute__((noinline)) void leaf_cxx(State &s) {
    unsigned slot = s.i % RING;
    delete[] s.cxx_ring[slot];
    char *p = new char[size_of(s.i)];
    p[0] = static_cast<char>(s.i);
    s.cxx_ring[slot] = p;
    asm volatile("" ::: "memory");
}

// Two families of intermediate frames, so that stacks differ by path as well as by depth.
template <int N> __attribute__((noinline)) void walk_a(State &s, int depth);
template <int N> __attribute__((noinline)) void walk_b(State &s, int depth);

template <int N> void walk_a(State &s, int depth) {
    if (depth == 0) {
        if (s.i & 4) leaf_cxx(s); else leaf_c(s);
    } else if ((s.i >> (N % 5)) & 1) {
        walk_b<N + 1>(s, depth - 1);
    } else {
        walk_a<N + 1>(s, depth - 1);
    }
    s.sum += N;  // work after the call: no tail call, the frame stays on the stack
    asm volatile("" ::: "memory");
}

template <int N> void walk_b(State &s, int depth) {
    if (depth == 0) {
        if (s.i & 8) leaf_c(s); else leaf_cxx(s);
    } else if ((s.i >> (N % 3)) & 1) {
        walk_a<N + 1>(s, depth - 1);
    } else {
        walk_b<N + 1>(s, depth - 1);
    }
    s.sum += 2 * N;
    asm volatile("" ::: "memory");
}

template <> void walk_a<16>(State &, int) {}
template <> void walk_b<16>(State &, int) {}

__attribute__((noinline)) void run(unsigned long pairs) {
    State s;
    for (s.i = 0; s.i < pairs; s.i++) {
        // 8 to 13 intermediate frames + leaf + run + (thread entry): 10 to 15 frames below main.
        walk_a<0>(s, 8 + static_cast<int>(s.i % 6));
    }
    for (int k = 0; k < RING; k++) {
        free(s.c_ring[k]);
        delete[] s.cxx_ring[k];
    }
    if (s.sum == 42) std::puts("");
}

}  // namespace

int main(int argc, char **argv) {
    unsigned long pairs = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000000;
    int threads = argc > 2 ? std::atoi(argv[2]) : 1;
    if (threads <= 1) {
        run(pairs);
        return 0;
    }
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; t++) ts.emplace_back(run, pairs / threads);
    for (auto &t : ts) t.join();
    return 0;
}
