"""memcheck bench workload (d): allocation-heavy Python (run with PYTHONMALLOC=malloc, so that
every object goes through malloc). Usage: python3 alloc.py ROUNDS"""
import sys


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
        self.tags = [x, y]


def build(n):
    d = {}
    for i in range(n):
        key = "k%d" % i
        d[key] = Point(i, str(i) * (i % 5))
    return d


def churn(d):
    total = 0
    for k, p in list(d.items()):
        s = "-".join((k, str(p.x), p.y))
        total += len(s.split("-"))
        p.tags.append(s.upper())
    return total


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    total = 0
    for r in range(rounds):
        d = build(20000)
        total += churn(d)
        total += sum(len(t) for t in (tuple(range(i % 50)) for i in range(20000)))
    print(total)


main()
