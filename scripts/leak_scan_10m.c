/* Measures the leak scan at scale: a list of N (default 10 M) 16-byte nodes reachable from a
 * global, with the last 1000 allocated lost. memcheck must report 16 bytes definitely lost,
 * 15,984 indirectly lost and the rest still reachable.
 * gcc -O2 -g -o leak_scan_10m scripts/leak_scan_10m.c && MEMCHECK_DEBUG_TIMING=1 memcheck ./leak_scan_10m */
#include <stdlib.h>
#include <stdio.h>
struct node { struct node *next; long v; };
struct node *head; /* reachable list */
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    for (long i = 0; i < n; i++) { struct node *x = malloc(sizeof *x); x->next = head; x->v = i; head = x; }
    /* lose the last 1000 */
    struct node *p = head; for (int i = 0; i < 1000; i++) p = p->next;
    head = p;
    return 0;
}
