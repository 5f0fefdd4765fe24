"""The APIs and providers behind the routes: the heavy half of start-up (app.py says why)."""

from __future__ import annotations

from aiohttp.typedefs import Handler

from pocketstack._generated.routes import Apis, handlers
from pocketstack.apis.admin import AdminApi
from pocketstack.apis.agents.api import AgentsApi
from pocketstack.apis.batches.api import BatchesApi
from pocketstack.apis.connectors import ConnectorsApi
from pocketstack.apis.conversations import ConversationsApi
from pocketstack.apis.datasets import DatasetsApi
from pocketstack.apis.eval.api import EvalApi
from pocketstack.apis.eval.benchmarks import BenchmarksApi
from pocketstack.apis.eval.builtin import sync_builtin
from pocketstack.apis.file_processors import FileProcessorsApi
from pocketstack.apis.files import FilesApi
from pocketstack.apis.inference.api import InferenceApi
from pocketstack.apis.inference.guardrails import Guardrails
from pocketstack.apis.inspect import InspectApi
from pocketstack.apis.models import ModelsApi
from pocketstack.apis.prompts import PromptsApi
from pocketstack.apis.providers import ProvidersApi
from pocketstack.apis.responses.api import ResponsesApi
from pocketstack.apis.safety import SafetyApi
from pocketstack.apis.scoring.api import ScoringApi
from pocketstack.apis.scoring.functions import ScoringFunctionsApi
from pocketstack.apis.shields import ShieldsApi
from pocketstack.apis.telemetry.api import TelemetryApi
from pocketstack.apis.tools import ToolsApi
from pocketstack.apis.vector_io.api import VectorIOApi
from pocketstack.core.stack import Stack


async def assemble(stack: Stack, served_tags: frozenset[str]) -> dict[str, Handler]:
    """Start the providers, sync the model registry, and return every operation's handler."""
    await stack.start_providers()
    models_api = ModelsApi(stack)
    await models_api.sync_from_providers()
    await models_api.sync_from_config()
    stack.on_models_changed(models_api.sync_from_providers)
    inference = InferenceApi(stack, models_api)
    stack.routers.models = models_api
    stack.routers.inference = inference
    files = FilesApi(stack)
    vector_io = VectorIOApi(stack, inference, files)
    stack.routers.vector_io = vector_io
    await vector_io.sync_from_config()
    await vector_io.files.start()
    stack.on_stop(vector_io.files.stop)
    datasets = DatasetsApi(stack, files)
    await datasets.sync_from_config()
    stack.routers.datasets = datasets
    stack.routers.dataset_io = datasets
    scoring_functions = ScoringFunctionsApi(stack)
    await scoring_functions.sync_from_providers()
    await scoring_functions.sync_from_config()
    scoring = ScoringApi(scoring_functions, datasets, datasets)
    stack.routers.scoring_functions = scoring_functions
    stack.routers.scoring = scoring
    shields = ShieldsApi(stack)
    await shields.sync_from_config()
    safety = SafetyApi(stack, shields)
    if stack.providers_of("safety"):
        inference.guardrails = Guardrails(stack.config.safety, safety)
        await inference.guardrails.validate_config()
    tools = ToolsApi(stack)
    await tools.sync_from_config()
    conversations = ConversationsApi(stack)
    prompts = PromptsApi(stack)  # no provider: always served, as Llama Stack's built-in router is
    connectors = ConnectorsApi(stack)
    responses = ResponsesApi(stack, inference, conversations, vector_io, tools, prompts, connectors)
    await responses.start()
    stack.on_stop(responses.stop)
    agents = AgentsApi(stack, inference, vector_io, tools, safety)
    stack.routers.agents = agents
    benchmarks = BenchmarksApi(stack, datasets, scoring_functions)
    await sync_builtin(stack, datasets, benchmarks)
    await benchmarks.sync_from_config()
    evaluation = EvalApi(benchmarks)
    await evaluation.start()
    stack.on_stop(evaluation.stop)
    inspect = InspectApi(stack, served_tags)
    providers = ProvidersApi(stack)
    batches = BatchesApi(stack, models_api, inference, files, responses, safety)
    await batches.start()
    stack.on_stop(batches.stop)  # registered last, so run first: batches pause before the APIs they call stop
    apis = Apis(
        inspect=inspect,
        providers=providers,
        admin=AdminApi(inspect, providers),
        models=models_api,
        inference=inference,
        files=files,
        file_processors=FileProcessorsApi(stack, files, vector_io),
        vector_io=vector_io,
        shields=shields,
        safety=safety,
        responses=responses,
        conversations=conversations,
        prompts=prompts,
        agents=agents,
        tool_groups=tools,
        tool_runtime=tools,
        connectors=connectors,
        datasets=datasets,
        dataset_io=datasets,
        scoring_functions=scoring_functions,
        scoring=scoring,
        benchmarks=benchmarks,
        eval=evaluation,
        batches=batches,
        telemetry=TelemetryApi(stack, datasets, datasets),
    )
    return handlers(apis)
