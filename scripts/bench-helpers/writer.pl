#!/usr/bin/perl
# Load generator for scripts/bench: single-row writes (INSERT / UPDATE / DELETE on random ids of bench.t) at a
# fixed total rate, autocommit, each write timed on its own (DBI + DBD::mysql, Time::HiRes).
#
#   writer.pl --port P --rate 500 --max-id N --out FILE [--connections 1] [--db bench --table t]
#
# --connections C: C processes, one connection each, each doing rate/C writes/s (staggered). With C=1 all the
# writes go through ONE connection, one after the other, so the rate is capped by 1/latency.
# Runs until SIGTERM/SIGINT. Writes FILE with one line per write: "start_epoch latency_ms ok kind rows late_ms
# conn" (late_ms: how far behind its slot the write started), then a line "# summary {json}" with the counters
# (inserted, deleted rows, errors, missed slots).
# The schedule is open-loop (one write every C/rate s on each connection). A write that stalls is not followed by
# a burst of the writes of the slots it covered: once a connection is more than 100 ms behind, those slots are
# counted as "missed" and its schedule restarts from now, so a stall shows up as the latency of the write that was
# blocked (and as a lower achieved rate).
use strict;
use warnings;
use DBI;
use Time::HiRes qw(time sleep);
use Getopt::Long;
use POSIX ();

my ($port, $rate, $max_id, $out, $db, $table, $host, $user, $conns) =
    (3306, 500, 1000, '', 'bench', 't', '127.0.0.1', 'root', 1);
GetOptions('port=i' => \$port, 'rate=f' => \$rate, 'max-id=i' => \$max_id, 'out=s' => \$out,
           'db=s' => \$db, 'table=s' => \$table, 'host=s' => \$host, 'user=s' => \$user,
           'connections=i' => \$conns) or die "bad options\n";
die "--out is required\n" unless $out;
$conns = 1 if $conns < 1;

my $stop = 0;
$SIG{TERM} = sub { $stop = 1 };
$SIG{INT}  = sub { $stop = 1 };

my $dsn = "DBI:mysql:database=$db;host=$host;port=$port;mysql_connect_timeout=5";
my @sql = (
    "INSERT INTO `$table` (a, b, c, d, e) VALUES (?, ?, NOW(), ?, ?)",
    "UPDATE `$table` SET a = ?, d = ? WHERE id = ?",
    "DELETE FROM `$table` WHERE id = ?",
);
my @keys = qw(ops ok errors inserted updated_rows deleted_rows missed_slots reconnects);

sub connect_db {
    return DBI->connect($dsn, $user, $ENV{MYSQL_PWD} // '',
        { RaiseError => 0, PrintError => 0, AutoCommit => 1, mysql_auto_reconnect => 0 });
}

# One connection's loop; writes its lines to $file and its counters as the last line.
sub run_conn {
    my ($c, $file) = @_;
    our $parent;
    srand($$ ^ int(time * 1000));
    open(my $fh, '>', $file) or die "cannot write $file: $!\n";
    my $dbh;
    for (1 .. 100) { $dbh = connect_db() and last; sleep 0.1; }
    die "writer: cannot connect: $DBI::errstr\n" unless $dbh;
    my ($ins, $upd, $del) = map { $dbh->prepare($_) } @sql;
    my $filler = 'w' x 100;
    my %n = map { $_ => 0 } @keys;
    my %first_error;
    my $interval = $conns / $rate;
    my $next = time + $c / $rate;   # staggered start
    while (!$stop) {
        last if getppid() != $parent;   # the parent is gone (killed): do not outlive it
        my $now = time;
        if ($now < $next) { sleep($next - $now); next if $stop; }
        my $r = rand();
        my ($kind, $sth, @args);
        if ($r < 0.4) {
            ($kind, $sth, @args) = ('I', $ins, int(rand(1_000_000)), "writer-" . int(rand(1e9)), sprintf('%.2f', rand(1e5)), $filler);
        } elsif ($r < 0.8) {
            ($kind, $sth, @args) = ('U', $upd, int(rand(1_000_000)), sprintf('%.2f', rand(1e5)), 1 + int(rand($max_id)));
        } else {
            ($kind, $sth, @args) = ('D', $del, 1 + int(rand($max_id)));
        }
        my $s = time;
        my $late = $s - $next;
        my $rows = $sth->execute(@args);
        my $e = time;
        my $ok = defined $rows ? 1 : 0;
        $n{ops}++;
        if ($ok) {
            $n{ok}++;
            $rows = 0 + $rows;   # "0E0" means 0 rows
            $n{inserted} += $rows if $kind eq 'I';
            $n{updated_rows} += $rows if $kind eq 'U';
            $n{deleted_rows} += $rows if $kind eq 'D';
        } else {
            $n{errors}++;
            my $msg = $DBI::errstr // 'unknown error';
            $first_error{$msg}++;
            $rows = 0;
            if (!$dbh->ping) {   # lost connection: reconnect (counted; the time shows as lateness)
                $dbh->disconnect;
                $dbh = undef;
                while (!$stop && getppid() == $parent && !($dbh = connect_db())) { sleep 0.05; }
                last unless $dbh;
                $n{reconnects}++;
                ($ins, $upd, $del) = map { $dbh->prepare($_) } @sql;
            }
        }
        printf $fh "%.6f %.3f %d %s %d %.3f %d\n", $s, ($e - $s) * 1000.0, $ok, $kind, $rows, $late * 1000.0, $c;
        $next += $interval;
        my $after = time;
        if ($after > $next + 0.1) {
            $n{missed_slots} += int(($after - $next) / $interval);
            $next = $after;
        }
    }
    my @errs = map { my $m = $_; $m =~ s/["\\]/ /g; $m =~ s/[\r\n\t]+/ /g; "\"$m\"" } sort keys %first_error;
    printf $fh "# conn %s %s\n", join(' ', map { $n{$_} } @keys), join("\t", @errs);
    close $fh;
    $dbh->disconnect if $dbh;
}

my $t0 = time;
our $parent = $conns == 1 ? getppid() : $$;
if ($conns == 1) {
    run_conn(0, "$out.0");
} else {
    my @kids;
    for my $c (0 .. $conns - 1) {
        my $pid = fork();
        die "fork: $!\n" unless defined $pid;
        if ($pid == 0) { run_conn($c, "$out.$c"); POSIX::_exit(0); }
        push @kids, $pid;
    }
    # Wait for the stop signal, then pass it on.
    my $caller = getppid();
    while (!$stop) { sleep 0.05; last if waitpid(-1, POSIX::WNOHANG()) > 0 || getppid() != $caller; }
    kill 'TERM', @kids;
    waitpid($_, 0) for @kids;
}
my $elapsed = time - $t0;

# Merge the connections' files into FILE, in start order.
my %tot = map { $_ => 0 } @keys;
my %msgs;
my @lines;
for my $c (0 .. $conns - 1) {
    open(my $in, '<', "$out.$c") or next;
    while (my $l = <$in>) {
        if ($l =~ /^# conn (.*)$/) {
            my ($nums) = split /\s+"/, $1;
            my @v = split ' ', $nums;
            $tot{$keys[$_]} += $v[$_] // 0 for 0 .. $#keys;
            $msgs{$_} = 1 for ($l =~ /"([^"]*)"/g);
            next;
        }
        push @lines, $l;
    }
    close $in;
    unlink "$out.$c";
}
@lines = sort { (split ' ', $a)[0] <=> (split ' ', $b)[0] } @lines;
open(my $fh, '>', $out) or die "cannot write $out: $!\n";
print $fh @lines;
printf $fh "# summary {%s,\"connections\":%d,\"elapsed_s\":%.3f,\"rate\":%g,\"error_messages\":[%s]}\n",
    join(',', map { "\"$_\":$tot{$_}" } @keys), $conns, $elapsed, $rate, join(',', map { "\"$_\"" } sort keys %msgs);
close $fh;
