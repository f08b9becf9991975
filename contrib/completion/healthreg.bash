# bash completion for healthreg: commands, each command's options (as
# `healthreg help COMMAND` lists them), maint's words, the values of
# --log-level and --log-format, and file names after -c and --token-file.
#
# Install as <prefix>/share/bash-completion/completions/healthreg, or
# source it from ~/.bashrc. tests/integration/test_completion.py checks
# it against the binary's own help.

_healthreg()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=
	local commands="run check validate status why maint reload help version"
	local global="--log-level --log-format --help -h --version -V"
	local takes_value="-c --config --api --token-file --reason --service --log-level --log-format"
	local cmd= sub= opts= i w

	COMPREPLY=()
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
	# "--opt=value": bash splits it into "--opt" "=" "value".
	if [[ $cur == "=" ]]; then
		cur=
	elif [[ $prev == "=" ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD-2]}
	fi

	# The command and maint's word: the words that are not options or
	# an option's value, options may come before or after them.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ " $takes_value " == *" $w "* ]]; then
			((i++))
			[[ ${COMP_WORDS[i]} == "=" ]] && ((i++))
			continue
		fi
		[[ $w == -* || $w == "=" ]] && continue
		if [[ -z $cmd ]]; then
			cmd=$w
		elif [[ -z $sub ]]; then
			sub=$w
		fi
	done

	case $prev in
	-c | --config | --token-file)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--log-level)
		COMPREPLY=($(compgen -W "error warn info debug" -- "$cur"))
		return
		;;
	--log-format)
		COMPREPLY=($(compgen -W "logfmt json" -- "$cur"))
		return
		;;
	--api | --reason | --service)
		return
		;;
	esac

	case $cmd in
	"")
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
		;;
	run | validate) opts="-c --config" ;;
	check) opts="-c --config --json" ;;
	status | why) opts="--api -c --config --token-file --json" ;;
	reload) opts="--api -c --config --token-file" ;;
	maint)
		if [[ -z $sub && $cur != -* ]]; then
			COMPREPLY=($(compgen -W "enable disable" -- "$cur"))
			return
		fi
		opts="--api -c --config --token-file --service"
		[[ $sub == enable ]] && opts+=" --reason"
		;;
	help)
		[[ -z $sub && $cur != -* ]] &&
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		return
		;;
	version) ;;
	*) return ;;
	esac
	[[ $cur == -* ]] && COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
	return 0
}
complete -F _healthreg healthreg
