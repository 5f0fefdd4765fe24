// The scripted program test_kotlin_sdk.py compiles with the generated SDK and runs against a live server:
// models, chat, a chat stream, embeddings, a file upload, a vector-store search, a decoded 400.
import pocketstack.client.AttachFileRequest
import pocketstack.client.ChatCompletionRequest
import pocketstack.client.CreateVectorStoreRequest
import pocketstack.client.EmbeddingsInput
import pocketstack.client.EmbeddingsRequest
import pocketstack.client.PocketStackClient
import pocketstack.client.PocketStackException
import pocketstack.client.SearchVectorStoreRequest
import pocketstack.client.Upload
import pocketstack.client.UserMessage
import pocketstack.client.VectorStoreFileStatus
import pocketstack.client.asList
import pocketstack.client.toJson
import kotlin.system.exitProcess

fun check(ok: Boolean, what: String) {
    if (!ok) {
        System.err.println("FAILED: $what")
        exitProcess(1)
    }
    println("ok: $what")
}

fun main(args: Array<String>) {
    val (baseUrl, chatModel, embeddingModel) = args
    val client = PocketStackClient(baseUrl)

    val models = client.openaiListModels()
    check(models.data.any { it.id == chatModel }, "models lists $chatModel")

    val hello = ChatCompletionRequest(
        model = chatModel,
        messages = listOf(UserMessage(content = "Say hello.".toJson())),
        maxTokens = 12,
        temperature = 0.0,
    )
    val answer = client.openaiChatCompletion(hello)
    val text = answer.choices.first().message.content ?: ""
    check(text.isNotBlank(), "chat answers: $text")

    val streamed = client.openaiChatCompletionStream(hello).toList()
    val joined = streamed.flatMap { it.choices }.joinToString("") { it.delta.content ?: "" }
    check(joined == text, "the stream says the same: $joined")

    val embedded = client.openaiEmbeddings(EmbeddingsRequest(model = embeddingModel, input = EmbeddingsInput.OfString("A man is eating food.")))
    check(embedded.data.first().embedding.asList().size == 384, "embeddings have 384 dimensions")

    val file = client.openaiUploadFile(
        Upload("Comets grow a glowing tail of ice and dust near the sun.".toByteArray(), "comets.txt", "text/plain"),
        purpose = "assistants",
    )
    check(file.id.startsWith("file-"), "uploaded ${file.id}")
    val store = client.openaiCreateVectorStore(CreateVectorStoreRequest(name = "docs", embeddingModel = embeddingModel))
    client.openaiAttachFileToVectorStore(store.id, AttachFileRequest(fileId = file.id))
    var status = VectorStoreFileStatus.IN_PROGRESS
    repeat(600) {
        if (status == VectorStoreFileStatus.IN_PROGRESS) {
            Thread.sleep(100)
            status = client.openaiRetrieveVectorStoreFile(store.id, file.id).status
        }
    }
    check(status == VectorStoreFileStatus.COMPLETED, "the file was ingested ($status)")
    val found = client.openaiSearchVectorStore(store.id, SearchVectorStoreRequest(query = "what grows near the sun".toJson()))
    check(found.data.first().filename == "comets.txt", "the search finds comets.txt")

    try {
        client.openaiChatCompletion(hello.copy(temperature = 9.0))
        check(false, "a temperature of 9 is refused")
    } catch (e: PocketStackException) {
        check(e.status == 400 && e.error?.error?.message?.contains("temperature") == true, "a 400 decoded: ${e.message}")
    }
    println("PASSED")
}
