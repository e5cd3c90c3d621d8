#!/usr/bin/env python3
"""memcheck bench workload (c): writes a large C file for gcc's cc1 to compile with -O2.

Usage: gen_c.py FUNCTIONS > file.c. Each function mixes loops, switches, structs, calls,
floating point and string literals, so that the compiler's passes allocate at many depths.
"""
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
rnd = random.Random(5)
out = sys.stdout.write
out("typedef unsigned long u64;\n")
out("struct node { struct node *next; int key; double w; char name[16]; };\n")
out("int printf(const char *, ...);\n")
out("static int table[256];\n")
for i in range(n):
    kind = i % 4
    out(f"static int helper{i}(int a, int b) {{ return (a * {rnd.randint(2, 99)}) ^ (b >> {i % 7 + 1}); }}\n")
    out(f"int func{i}(struct node *list, int n, double *v) {{\n")
    out("  int acc = 0; double s = 0.0; struct node *p;\n")
    out(f"  for (int i = 0; i < n; i++) {{ acc += helper{i}(i, acc); v[i & 15] += i * {rnd.random():.3f}; }}\n")
    out("  for (p = list; p; p = p->next) {\n")
    out(f"    switch ((p->key + {i}) & 7) {{\n")
    for c in range(8):
        op = rnd.choice(["+=", "-=", "^=", "|="])
        out(f"      case {c}: acc {op} p->key * {rnd.randint(1, 50)} + table[{rnd.randint(0, 255)}]; s += p->w * {c + 1}.5; break;\n")
    out("    }\n  }\n")
    if kind == 0:
        out(f"  if (acc > {rnd.randint(10, 1000)}) printf(\"func{i}: %d %f\\n\", acc, s);\n")
    elif kind == 1:
        out("  for (int j = 0; j < 16; j++) for (int k = 0; k < j; k++) v[j] = v[j] * 0.5 + v[k] * s;\n")
    elif kind == 2:
        out(f"  {{ struct node local = {{ 0, {i}, 1.0, \"n{i}\" }}; acc += local.key + local.name[1]; }}\n")
    else:
        out(f"  while (n > {rnd.randint(1, 9)}) {{ n = (n * 3 + 1) / 2; acc += n & {rnd.randint(1, 255)}; }}\n")
    if i > 0:
        out(f"  acc += func{rnd.randint(0, i - 1)}(list, n / 2, v);\n")
    out("  return acc + (int)s;\n}\n")
