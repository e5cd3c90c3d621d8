/* The failure path of the C++ allocation operators. A throwing operator new must call the
 * installed new_handler until it gives up, then throw std::bad_alloc; the exception cannot
 * unwind through a Rust frame, so this lives in C (built with -fexceptions) and the operators
 * reach it by a tail jump, leaving no Rust frame on the stack. */
#include <stddef.h>

#define RTLD_DEFAULT ((void *)0)
extern void *dlsym(void *handle, const char *name);
extern void *memcheck_new_fast(size_t size, size_t align, unsigned func, int nothrow, size_t sp, size_t bp);

typedef void (*handler_t)(void);

void *memcheck_new_slow(size_t size, size_t align, unsigned func, int nothrow) {
    handler_t (*get_handler)(void) = (handler_t (*)(void))dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv");
    for (;;) {
        handler_t h = get_handler ? get_handler() : 0;
        if (!h)
            break;
        h();
        void *p = memcheck_new_fast(size, align, func, nothrow, 0, 0);
        if (p)
            return p;
    }
    if (nothrow)
        return 0;
    void (*throw_bad_alloc)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv");
    if (throw_bad_alloc)
        throw_bad_alloc();
    __builtin_trap();
}
