"""``gwconfig generate``: send one request through the runtime client (thin adapter)."""

from __future__ import annotations

import sys

import click
import orjson

from gwconfig import settings
from gwconfig.cli import config_file_option, database_url_option, environment_option

# ``gwconfig --help`` imports every command module: the runtime (asyncio, the provider
# adapters, ~0.15 s) is imported inside the command, when it runs.


@click.command("generate")
@click.argument("prompt")
@click.option("--model", "-m", default=None, help="provider/model, route, alias or model id.")
@click.option("--provider", "provider_id", default=None, help="Pin the provider.")
@click.option("--stream", is_flag=True, help="Print the answer as it arrives.")
@database_url_option
@config_file_option
@environment_option
@click.option("--system", "system_prompt", default=None, help="System prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None)
@click.option("--temperature", type=click.FloatRange(0, 2), default=None)
@click.option("--session-id", default=None, help="Session id for the usage record.")
@click.option("--json", "as_json", is_flag=True, help="Print the response and metadata as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show provider, attempts, tokens on stderr.")
def generate_cmd(
    prompt: str,
    model: str | None,
    provider_id: str | None,
    stream: bool,
    database_url: str | None,
    config_file: str | None,
    environment: str | None,
    system_prompt: str | None,
    max_tokens: int | None,
    temperature: float | None,
    session_id: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Send PROMPT ('-' reads stdin) to MODEL through the gateway client and print the answer."""
    from gwconfig.runtime import InterventionContext, LLMConfig, LLMRequest
    from gwconfig.runtime.oneshot import generate_once

    if prompt == "-":
        prompt = sys.stdin.read()
    if config_file and database_url:
        raise click.UsageError("give either --config or --database-url, not both")
    source = config_file or settings.database_url(database_url)
    request = LLMRequest(
        prompt,
        LLMConfig(
            model_identifier=model,
            provider_id=provider_id,
            max_tokens=max_tokens,
            temperature=temperature,
            system_prompt=system_prompt,
        ),
        InterventionContext(session_id=session_id),
    )

    def echo_chunk(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    response = generate_once(
        source,
        request,
        stream=stream,
        on_chunk=None if as_json else echo_chunk,
        environment=environment,
    )
    if as_json:
        doc = {
            "generated_content": response.generated_content,
            "provider_id": response.provider_id,
            "model_id": response.model_id,
            "route": response.route,
            "finish_reason": response.finish_reason,
            "usage": {
                "prompt_tokens": response.usage.prompt_tokens,
                "completion_tokens": response.usage.completion_tokens,
                "total_tokens": response.usage.total_tokens,
            },
            "latency_ms": round(response.latency_ms, 3),
            "attempts": [
                {
                    "provider_id": a.provider_id,
                    "model_id": a.model_id,
                    "outcome": a.outcome,
                    "error": a.error,
                    "latency_ms": round(a.latency_ms, 3),
                }
                for a in response.attempts
            ],
        }
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    if stream:
        click.echo()
    else:
        click.echo(response.generated_content)
    if verbose:
        tried = ", ".join(f"{a.provider_id}/{a.model_id}: {a.outcome}" for a in response.attempts)
        click.echo(
            f"answered by {response.provider_id}/{response.model_id} in "
            f"{response.latency_ms:.1f} ms; tokens {response.usage.prompt_tokens} in / "
            f"{response.usage.completion_tokens} out; attempts: {tried}",
            err=True,
        )
