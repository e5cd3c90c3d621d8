# memcheck bench workload (e): allocation-heavy Perl (strings, hashes, arrays, sort, regexes).
# Usage: perl alloc.pl ROUNDS
use strict;
use warnings;

my $rounds = shift // 20;
my $total = 0;
for my $r (1 .. $rounds) {
    my %h;
    for my $i (1 .. 20000) {
        my $key = "key$i" . ("x" x ($i % 7));
        $h{$key} = [ $i, "v" x ($i % 40), { n => $i } ];
    }
    for my $k (sort keys %h) {
        my $s = join(",", $k, $h{$k}[0], $h{$k}[1]);
        $s =~ s/(\d+)/<$1>/g;
        $total += length($s) + scalar(split /,/, $s);
    }
}
print "$total\n";
