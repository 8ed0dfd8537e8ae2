// Shell completion for `resweep`: commands, their options, sweep files for submit,
// and sweep ids and names (asked of the coordinator, silently skipped when none
// answers).
#include "cli/commands.h"

namespace resweep {

const char* BashCompletion() {
  return R"bash(# bash completion for resweep; load with: source <(resweep completion bash)
_resweep_sweeps() {
  resweep status --timeout 2 2>/dev/null | awk '$1 ~ /^[0-9a-f]+$/ {print $1; print $2}'
}
_resweep() {
  local cur prev words cword
  _init_completion 2>/dev/null || {
    cur="${COMP_WORDS[COMP_CWORD]}"; prev="${COMP_WORDS[COMP_CWORD-1]}"
    words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
  }
  local commands="submit status runs run results wait watch workers cancel retry delete plot report completion"
  local global="--coordinator -c --timeout --verbose --tls-ca --tls-cert --tls-key --token-file --help --version"
  local cmd="" i
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in
      submit|status|runs|run|results|wait|watch|workers|cancel|retry|delete|plot|report|completion) cmd="${words[i]}"; break ;;
    esac
  done
  case "$prev" in
    --tls-ca|--tls-cert|--tls-key|--token-file|--db) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --format|-f)
      if [[ $cmd == results ]]; then COMPREPLY=($(compgen -W "table markdown csv json" -- "$cur"))
      elif [[ $cmd == runs ]]; then COMPREPLY=($(compgen -W "table json csv" -- "$cur"))
      else COMPREPLY=($(compgen -W "table json" -- "$cur")); fi
      return ;;
    --out|-o) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --metric) COMPREPLY=($(compgen -W "train_loss train_error test_error test_loss lr" -- "$cur")); return ;;
    --band) COMPREPLY=($(compgen -W "std ci95 none" -- "$cur")); return ;;
    --state) COMPREPLY=($(compgen -W "queued leased running succeeded failed cancelled" -- "$cur")); return ;;
  esac
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$global" -- "$cur"))
    else COMPREPLY=($(compgen -W "$commands" -- "$cur")); fi
    return
  fi
  local opts=""
  case "$cmd" in
    submit) opts="--dry-run --new-version" ;;
    status) opts="--all --format --db" ;;
    runs) opts="--state --format --page-size --db" ;;
    run) opts="--format --db" ;;
    results) opts="--format --last-k --db" ;;
    wait) opts="--limit --poll --db" ;;
    watch) opts="--poll --last-k --db" ;;
    workers) opts="--all --format --db" ;;
    retry) opts="--failed --cancelled --restart" ;;
    delete) opts="--force" ;;
    plot) opts="--out --metric --x --rolling --xrange --logy --band --seeds --max-points --summary --last-k --db" ;;
    report) opts="--out --last-k --no-figures --db" ;;
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts --help" -- "$cur")); return; fi
  case "$cmd" in
    submit) COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur") $(compgen -d -- "$cur")) ;;
    status|runs|results|wait|watch|cancel|retry|delete|plot|report) COMPREPLY=($(compgen -W "$(_resweep_sweeps)" -- "$cur")) ;;
  esac
}
complete -F _resweep resweep
)bash";
}

const char* ZshCompletion() {
  return R"zsh(#compdef resweep
# zsh completion for resweep; load with: source <(resweep completion zsh)
# (or save as _resweep in a directory on $fpath)
_resweep_sweeps() {
  local -a sweeps
  sweeps=(${(f)"$(resweep status --timeout 2 2>/dev/null | awk '$1 ~ /^[0-9a-f]+$/ {print $1; print $2}')"})
  compadd -a sweeps
}
_resweep() {
  local -a commands
  commands=(
    'submit:validate a sweep file and queue its runs'
    'status:sweeps with run counts, epoch progress and ETA'
    'runs:one line per run of a sweep'
    'run:one run: config, every attempt, per-epoch history'
    'results:mean / std / n of test error per grid cell'
    'wait:show progress until the sweep is done'
    'watch:redraw progress per cell and the results table until done'
    'workers:workers: devices, slots, runs held, last seen'
    'cancel:cancel a sweep'"'"'s queued and running runs'
    'retry:queue failed (or cancelled, or named) runs again'
    'delete:archive a sweep'
    'plot:draw learning curves or the summary with gnuplot'
    'report:write a sweep'"'"'s report (README, CSV files, figures) into a folder'
    'completion:print a shell completion script'
  )
  _arguments -C \
    '(-c --coordinator)'{-c,--coordinator}'[coordinator host\[:port\]]:address:' \
    '--timeout[seconds to wait for each call]:seconds:' \
    '--verbose[also print gRPC log lines]' \
    '--tls-ca[CA to trust (PEM)]:file:_files' \
    '--tls-cert[client certificate (PEM)]:file:_files' \
    '--tls-key[client key (PEM)]:file:_files' \
    '--token-file[token file]:file:_files' \
    '--version[print the version]' \
    '1:command:->command' \
    '*::arg:->args'
  case $state in
    command) _describe 'command' commands ;;
    args)
      case $words[1] in
        submit) _arguments '--dry-run[validate only]' '--new-version[reuse a sweep name]' '1:sweep file:_files -g "*.y(a|)ml"' ;;
        status) _arguments '--all[include deleted sweeps]' '--format[output]:format:(table json)' '--db[database file]:file:_files' '1:sweep:_resweep_sweeps' ;;
        runs) _arguments '--state[only this state]:state:(queued leased running succeeded failed cancelled)' '--format[output]:format:(table json csv)' '--page-size[runs per request]:N:' '--db[database file]:file:_files' '1:sweep:_resweep_sweeps' ;;
        run) _arguments '--format[output]:format:(table json)' '--db[database file]:file:_files' '1:run id:' ;;
        results) _arguments '--format[output]:format:(table markdown csv json)' '--last-k[epochs averaged]:K:' '--db[database file]:file:_files' '1:sweep:_resweep_sweeps' ;;
        wait) _arguments '--limit[seconds]:seconds:' '--poll[seconds]:seconds:' '--db[database file]:file:_files' '1:sweep:_resweep_sweeps' ;;
        watch) _arguments '--poll[seconds]:seconds:' '--last-k[epochs averaged]:K:' '--db[database file]:file:_files' '1:sweep:_resweep_sweeps' ;;
        workers) _arguments '--all[include gone workers]' '--format[output]:format:(table json)' '--db[database file]:file:_files' ;;
        cancel) _arguments '1:sweep:_resweep_sweeps' ;;
        retry) _arguments '--failed[failed runs]' '--cancelled[cancelled runs]' '--restart[from epoch 0]' '1:sweep:_resweep_sweeps' '*:run id:' ;;
        delete) _arguments '--force[also unfinished sweeps]' '1:sweep:_resweep_sweeps' ;;
        plot) _arguments '(-o --out)'{-o,--out}'[figure .png .svg .pdf]:file:_files' '--metric[what to draw]:metric:(train_loss train_error test_error test_loss lr)' '--x[x axis or grid axis]:x:' '--rolling[trailing mean]:K:' '--xrange[A\:B]:range:' '--logy[log y axis]' '--band[band]:band:(std ci95 none)' '--seeds[a line per run]' '--max-points[points per run]:N:' '--summary[last-K test error against a grid axis]' '--last-k[epochs averaged]:K:' '--db[database file]:file:_files' '1:sweep:_resweep_sweeps' ;;
        report) _arguments '(-o --out)'{-o,--out}'[report folder]:folder:_files -/' '--last-k[epochs averaged]:K:' '--no-figures[no gnuplot]' '--db[database file]:file:_files' '1:sweep:_resweep_sweeps' ;;
        completion) _arguments '1:shell:(bash zsh)' ;;
      esac ;;
  esac
}
compdef _resweep resweep 2>/dev/null || _resweep "$@"
)zsh";
}

}  // namespace resweep
